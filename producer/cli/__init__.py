"""The ``videofleet`` command: the project's own operations, one subcommand each."""

from __future__ import annotations

import logging

import click
from pydantic import ValidationError

from producer.cli.core import demo, ingest_command, migrate, serve
from producer.cli.cors import cors
from producer.cli.d1 import d1_group
from producer.cli.flower import flower_command, flower_link_command
from producer.cli.metrics import metrics_command
from producer.cli.poll import poll
from producer.cli.tasks import recover_command, requeue_command, tasks_group
from producer.cli.transports import pull, rejected
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


COMMANDS = (
    migrate,
    ingest_command,
    serve,
    demo,
    flower_command,
    flower_link_command,
    metrics_command,
    cors,
    poll,
    pull,
    rejected,
    tasks_group,
    requeue_command,
    recover_command,
    d1_group,
)
for _command in COMMANDS:
    main.add_command(_command)
