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
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import click

from schema.settings import Settings

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
