"""The core commands: ``migrate``, ``ingest``, ``serve`` and ``demo``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from producer.events.intake import Incoming, MessageVerdict
from producer.events.services import open_services
from schema.db import make_engine
from schema.errors import TransientError
from schema.migrate import upgrade
from schema.settings import Settings

CLI_SOURCE = "cli"


@click.command()
@click.pass_obj
def migrate(settings: Settings) -> None:
    """Create or upgrade the database schema (Alembic, to the latest revision)."""
    engine = make_engine(settings.database_url)
    upgrade(engine)
    engine.dispose()
    click.echo(f"database at {engine.url.render_as_string(hide_password=True)} is up to date")


@click.command("ingest")
@click.argument("source", type=click.File("rb"), default="-")
@click.pass_obj
def ingest_command(settings: Settings, source: Any) -> None:
    """Ingest a notification body from SOURCE: R2, S3 or MinIO, one object or a JSON list.

    A body that is refused is recorded in rejected_events (source "cli"), as the webhook and the
    pull consumer record theirs.
    """
    raw = source.read()
    try:
        with open_services(settings) as services:
            intake = services.intake(source=CLI_SOURCE)
            [result] = intake.take([Incoming(None, raw, body=raw)])
    except TransientError as exc:
        raise click.ClickException(f"{exc} (nothing lost: ingest the same bodies again)") from exc
    if result.verdict is MessageVerdict.REJECTED:
        raise click.ClickException(f"not an event notification: {result.reason}")
    if result.verdict is MessageVerdict.RETRY:
        raise click.ClickException(f"{result.reason} (nothing lost: ingest the same bodies again)")
    for outcome in result.outcomes:
        reason = f"  ({outcome.reason})" if outcome.reason else ""
        click.echo(f"{outcome.result:<10} {outcome.task_id}  {outcome.key}{reason}")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, help="Port to listen on.")
@click.pass_obj
def serve(settings: Settings, host: str, port: int) -> None:
    """Serve the producer's HTTP API (webhook, uploads, admin) with uvicorn."""
    import uvicorn

    from producer.web import create_app

    uvicorn.run(create_app(settings), host=host, port=port, log_level=settings.log_level.lower())


@click.command()
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
