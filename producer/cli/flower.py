"""``videofleet flower`` and ``flower-link``: Flower on the fleet's broker, a row's pages in it."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click
import sqlalchemy as sa

from producer.ops.flower import (
    DEFAULT_PORT,
    DEFAULT_STATE_SAVE_INTERVAL_MS,
    FlowerOptions,
    flower_invocation,
    flower_links,
)
from schema.db import make_engine
from schema.settings import Settings
from schema.tables import tasks

logger = logging.getLogger(__name__)


@click.command("flower")
@click.option("--address", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, help="Port to listen on.")
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("flower-state.db"),
    show_default=True,
    help="Where Flower keeps its state across restarts (a shelve file; keep it on a volume).",
)
@click.option(
    "--state-save-interval-ms",
    default=DEFAULT_STATE_SAVE_INTERVAL_MS,
    show_default=True,
    type=click.IntRange(min=1),
    help="How often Flower saves its state, besides on shutdown.",
)
@click.option("--url-prefix", default=None, help="Serve under this path (behind a proxy).")
@click.option(
    "--unauthenticated",
    is_flag=True,
    help="Run without FLOWER_BASIC_AUTH: anyone who reaches the port can revoke tasks.",
)
@click.pass_obj
def flower_command(
    settings: Settings,
    address: str,
    port: int,
    db: Path,
    state_save_interval_ms: int,
    url_prefix: str | None,
    unauthenticated: bool,
) -> None:
    """Run Flower (task and worker monitor) on the fleet's broker, with basic auth."""
    options = FlowerOptions(address, port, db, state_save_interval_ms, url_prefix, unauthenticated)
    argv, env = flower_invocation(settings, options, dict(os.environ))
    if unauthenticated:
        logger.warning("Flower on %s:%d runs WITHOUT authentication", address, port)
    db.parent.mkdir(parents=True, exist_ok=True)
    click.echo(f"Flower on http://{address}:{port}/ (state in {db})", err=True)
    sys.stdout.flush()
    os.execve(argv[0], argv, env)  # noqa: S606  (argv is built above, no shell)


@click.command("flower-link")
@click.argument("task_id")
@click.pass_obj
def flower_link_command(settings: Settings, task_id: str) -> None:
    """Print where TASK_ID's chain is in Flower (needs FLOWER_URL)."""
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            workflow_id = conn.execute(
                sa.select(tasks.c.workflow_id).where(tasks.c.id == task_id)
            ).one_or_none()
    finally:
        engine.dispose()
    if workflow_id is None:
        raise click.ClickException(f"no task {task_id}")
    if workflow_id[0] is None:
        raise click.ClickException(f"task {task_id} has no chain yet (never published)")
    click.echo(f"workflow_id  {workflow_id[0]}")
    if settings.flower_url is None:
        click.echo("set FLOWER_URL to print the Flower links")
        return
    links = flower_links(settings.flower_url, task_id, workflow_id[0])
    click.echo(f"first step   {links.first_step}")
    click.echo(f"all steps    {links.all_steps}")
