"""The ``videofleet`` command: the project's own operations, one subcommand each."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from producer.cli.poll import poll
from producer.cli.tasks import recover_command, requeue_command, tasks_group
from producer.events.intake import Incoming, Intake, Verdict
from producer.events.publish import ChainPublisher
from producer.events.rejections import RejectionLog
from producer.events.rules import EventRules
from producer.uploads.cors import cors
from schema.db import make_engine
from schema.errors import TransientError
from schema.migrate import upgrade
from schema.settings import Settings
from schema.storage import make_s3_client

CLI_SOURCE = "cli"


def load_settings() -> Settings:
    """Read the settings, turning a bad value into a one-paragraph error instead of a traceback."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']).upper() or 'settings'}: {e['msg']}"
            for e in exc.errors()
        )
        raise click.ClickException(f"invalid configuration: {problems}") from exc


@click.group()
@click.option("--log-level", default=None, help="Override LOG_LEVEL for this command.")
@click.pass_context
def main(ctx: click.Context, log_level: str | None) -> None:
    """videofleet: R2/S3 uploads in, validated and thumbnailed videos out."""
    settings = load_settings()
    logging.basicConfig(
        level=log_level or settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = settings


@main.command()
@click.pass_obj
def migrate(settings: Settings) -> None:
    """Create or upgrade the database schema (Alembic, to the latest revision)."""
    engine = make_engine(settings.database_url)
    upgrade(engine)
    engine.dispose()
    click.echo(f"database at {engine.url.render_as_string(hide_password=True)} is up to date")


@main.command("ingest")
@click.argument("source", type=click.File("rb"), default="-")
@click.pass_obj
def ingest_command(settings: Settings, source: Any) -> None:
    """Ingest a notification body from SOURCE: R2, S3 or MinIO, one object or a JSON list.

    A body that is refused is recorded in rejected_events (source "cli"), as the webhook and the
    pull consumer record theirs.
    """
    raw = source.read()
    engine = make_engine(settings.database_url)
    try:
        with ChainPublisher(settings) as publisher:
            intake = Intake(
                engine,
                publisher,
                RejectionLog(engine),
                source=CLI_SOURCE,
                rules=EventRules.from_settings(settings),
                storage=make_s3_client(settings),
            )
            [result] = intake.take([Incoming(None, raw, body=raw)])
    except TransientError as exc:
        raise click.ClickException(f"{exc} (nothing lost: ingest the same bodies again)") from exc
    finally:
        engine.dispose()
    if result.verdict is Verdict.REJECTED:
        raise click.ClickException(f"not an event notification: {result.reason}")
    if result.verdict is Verdict.RETRY:
        raise click.ClickException(f"{result.reason} (nothing lost: ingest the same bodies again)")
    for outcome in result.outcomes:
        reason = f"  ({outcome.reason})" if outcome.reason else ""
        click.echo(f"{outcome.result:<10} {outcome.task_id}  {outcome.key}{reason}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, help="Port to listen on.")
@click.pass_obj
def serve(settings: Settings, host: str, port: int) -> None:
    """Serve the producer's HTTP API (webhook, uploads, admin) with uvicorn."""
    import uvicorn

    from producer.web import create_app

    uvicorn.run(create_app(settings), host=host, port=port, log_level=settings.log_level.lower())


@main.command()
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=Path(".demo"),
    show_default=True,
    help="Where the demo keeps its logs.",
)
@click.option("--verbose", is_flag=True, help="Log the producer's INFO messages too.")
@click.pass_obj
def demo(settings: Settings, workdir: Path, verbose: bool) -> None:
    """Run the whole fleet locally on generated samples and print the resulting task rows."""
    from producer.dev.demo import run_demo  # the demo's imports are only needed here
    from producer.dev.localstack import StackError

    if not verbose:
        logging.getLogger().setLevel(logging.WARNING)  # the table is the demo's output
    try:
        ok = run_demo(settings, workdir=workdir, out=sys.stdout)
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(0 if ok else 1)


from producer.ops.flower import flower_command, flower_link_command  # noqa: E402
from producer.ops.metrics import metrics_command  # noqa: E402

main.add_command(flower_command)
main.add_command(flower_link_command)
main.add_command(metrics_command)
main.add_command(cors)
main.add_command(poll)
from producer.cli.transports import pull, rejected  # noqa: E402  (registered last on purpose)

main.add_command(pull)
main.add_command(rejected)
main.add_command(tasks_group)
main.add_command(requeue_command)
main.add_command(recover_command)
from producer.cli.d1 import d1_group  # noqa: E402

main.add_command(d1_group)
