"""The ``videofleet`` command: the project's own operations, one subcommand each."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from producer.admin_commands import recover_command, requeue_command, tasks_group
from producer.ingest import ingest
from producer.publish import ChainPublisher
from producer.sources.r2 import parse_r2
from schema.db import make_engine
from schema.errors import InvalidEvent, TransientError
from schema.migrate import upgrade
from schema.settings import Settings


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
@click.argument("source", type=click.File("r"), default="-")
@click.pass_obj
def ingest_command(settings: Settings, source: Any) -> None:
    """Ingest R2 event notification bodies (a JSON object or a list of them) from SOURCE."""
    try:
        document = json.load(source)
        bodies = document if isinstance(document, list) else [document]
        events = [parse_r2(body) for body in bodies]
    except (json.JSONDecodeError, InvalidEvent) as exc:
        raise click.ClickException(f"not an R2 notification: {exc}") from exc
    engine = make_engine(settings.database_url)
    try:
        with ChainPublisher(settings) as publisher:
            outcomes = ingest(engine, publisher, events)
    except TransientError as exc:
        raise click.ClickException(f"{exc} (nothing lost: ingest the same bodies again)") from exc
    for outcome in outcomes:
        click.echo(f"{outcome.result:<10} {outcome.task_id}  {outcome.key}")


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
@click.pass_obj
def demo(settings: Settings, workdir: Path) -> None:
    """Run the whole fleet locally on generated samples and print the resulting task rows."""
    from producer.demo import run_demo  # the demo's imports are only needed here
    from producer.localstack import StackError

    try:
        ok = run_demo(settings, workdir=workdir, out=sys.stdout)
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(0 if ok else 1)


main.add_command(tasks_group)
main.add_command(requeue_command)
main.add_command(recover_command)
