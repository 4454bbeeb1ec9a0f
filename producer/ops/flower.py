"""``videofleet flower``: Flower on the fleet's broker, authenticated and persistent by default.

Flower runs as ``python -m producer.ops.flower_login flower`` (``celery flower`` with failed logins
throttled per IP) in place of this process (``exec``), so SIGTERM from systemd, Docker or
Kubernetes reaches Flower itself and it saves its state before exiting. It
needs no worker code: the workers' task events carry everything it shows. Credentials and the
broker URL travel in the environment (``FLOWER_BASIC_AUTH``, ``BROKER_URL``), never on the
command line where ``ps`` would show them.

A task row's ``workflow_id`` is the Celery id of its chain's first step and the ``root_id`` of
all three, and every step takes the row's id as its only argument, so ``flower_links`` can
point an operator from a row to its chain.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import click
import sqlalchemy as sa

from schema.db import make_engine
from schema.settings import Settings
from schema.tables import tasks

logger = logging.getLogger(__name__)

DEFAULT_PORT = 5555
DEFAULT_STATE_SAVE_INTERVAL_MS = 60_000


@dataclass(frozen=True, slots=True)
class FlowerOptions:
    """How to run Flower: where it listens, where it keeps its state, whether it checks logins."""

    address: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    db: Path = Path("flower-state.db")
    state_save_interval_ms: int = DEFAULT_STATE_SAVE_INTERVAL_MS
    url_prefix: str | None = None
    unauthenticated: bool = False


def flower_invocation(
    settings: Settings, options: FlowerOptions, environ: dict[str, str]
) -> tuple[list[str], dict[str, str]]:
    """The argument vector and environment that run Flower for ``settings``.

    Every ``FLOWER_*`` variable of ``environ`` is dropped: Flower reads them all as options and
    stops at one it does not know (such as videofleet's own ``FLOWER_URL``).

    Raises:
        click.UsageError: no credentials are configured and ``--unauthenticated`` was not given.
    """
    env = {k: v for k, v in environ.items() if not k.upper().startswith("FLOWER_")}
    env["BROKER_URL"] = settings.broker_url
    env.pop("CELERY_BROKER_URL", None)
    if options.unauthenticated:
        env["FLOWER_UNAUTHENTICATED_API"] = "true"
    elif settings.flower_basic_auth is not None:
        env["FLOWER_BASIC_AUTH"] = settings.flower_basic_auth.get_secret_value()
    else:
        raise click.UsageError(
            "Flower needs credentials: set FLOWER_BASIC_AUTH=user:password "
            "(or pass --unauthenticated to run it open, e.g. behind an authenticating proxy)"
        )
    argv = [
        sys.executable,
        "-m",
        "producer.ops.flower_login",  # celery, with failed logins throttled
        "--config=producer.ops.flower_config",  # the priority levels to count the queue over
        "flower",
        f"--address={options.address}",
        f"--port={options.port}",
        "--persistent=True",
        f"--db={options.db}",
        f"--state_save_interval={options.state_save_interval_ms}",
    ]
    if options.url_prefix:
        argv.append(f"--url_prefix={options.url_prefix}")
    return argv, env


@dataclass(frozen=True, slots=True)
class ChainLinks:
    """Where a task row's chain is in Flower."""

    task_id: str
    workflow_id: str
    first_step: str
    all_steps: str


def flower_links(flower_url: str, task_id: str, workflow_id: str) -> ChainLinks:
    """Flower pages for a row: its first step, and a search listing every step of its chain."""
    base = flower_url.rstrip("/")
    search = urlencode({"search": f"args:{task_id}"}, quote_via=quote)
    return ChainLinks(
        task_id=task_id,
        workflow_id=workflow_id,
        first_step=f"{base}/task/{quote(workflow_id)}",
        all_steps=f"{base}/api/tasks?{search}",
    )


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
