"""``videofleet d1``: the D1 write-back's schema and backfill, from the producer's side.

``d1 schema`` prints (``--apply``: runs) the D1 DDL of the mirrored tables from
``schema/d1.sql``; ``d1 sync`` upserts every ``videos`` and task row changed since a time, the
backfill of a new D1 database and the catch-up after an outage longer than the mirror's expiry.
Both are idempotent: the DDL is ``IF NOT EXISTS`` and the upserts keep the newest row.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import click

from schema.d1 import MIRRORED_TABLES, changed_since, ddl_statements, execute, make_d1_client
from schema.db import make_engine
from schema.errors import D1Rejected, D1Unavailable
from schema.settings import Settings

# The CLI lets the SDK retry a throttled or failed call a few times (honouring Retry-After)
# before it gives up; a person is waiting, not a task queue.
CLI_SDK_RETRIES = 3
_DURATION = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str, *, now: datetime | None = None) -> int:
    """``--since`` as epoch milliseconds: a duration back from now (``90m``, ``6h``, ``2d``) or
    an ISO-8601 date or time (UTC unless it has an offset).

    Raises:
        click.BadParameter: neither form.
    """
    now = now or datetime.now(UTC)
    match = _DURATION.fullmatch(value.strip())
    if match is not None:
        when = now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    else:
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise click.BadParameter(
                "a duration (90m, 6h, 2d) or an ISO-8601 time (2026-12-01T08:00Z)"
            ) from exc
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _require_d1(settings: Settings) -> None:
    if not settings.d1_enabled:
        raise click.ClickException("set D1_ACCOUNT_ID, D1_DATABASE_ID and D1_API_TOKEN first")


@click.group("d1")
def d1_group() -> None:
    """The D1 write-back: mirror task and videos rows into a Cloudflare app's D1 database."""


@d1_group.command("schema")
@click.option("--apply", "apply_", is_flag=True, help="Run the DDL against the D1 database.")
@click.pass_obj
def schema_command(settings: Settings, apply_: bool) -> None:
    """Print the D1 DDL of videos and video_processing_tasks (from schema/d1.sql)."""
    statements = ddl_statements()
    if not apply_:
        for statement in statements:
            click.echo(f"{statement.sql};")
        return
    _require_d1(settings)
    client = make_d1_client(settings, max_retries=CLI_SDK_RETRIES)
    try:
        execute(client, settings, statements)
    except (D1Unavailable, D1Rejected) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"applied {len(statements)} statements to D1 database {settings.d1_database_id}")


@d1_group.command("sync")
@click.option(
    "--since",
    default=None,
    help="Only rows changed since then: 90m, 6h, 2d, or an ISO-8601 time. Default: every row.",
)
@click.pass_obj
def sync_command(settings: Settings, since: str | None) -> None:
    """Upsert the videos and task rows changed since --since into D1 (newest row wins)."""
    _require_d1(settings)
    since_ms = 0 if since is None else parse_since(since)
    client = make_d1_client(settings, max_retries=CLI_SDK_RETRIES)
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            for table in MIRRORED_TABLES:
                sent = changed = 0
                for page in changed_since(
                    conn, table, since_ms=since_ms, page=settings.d1_batch_statements
                ):
                    changed += execute(client, settings, page)
                    sent += len(page)
                click.echo(f"{table.name}: {sent} rows sent, {changed} changed in D1")
    except (D1Unavailable, D1Rejected) as exc:
        raise click.ClickException(f"{exc} (nothing lost: run the same sync again)") from exc
    finally:
        engine.dispose()
