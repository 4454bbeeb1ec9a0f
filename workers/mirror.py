"""The D1 write-back on the worker: after a task ends, its rows are mirrored into D1.

Sent here when a task completes or fails for good, and by the producer when an admin requeues
one (``ChainPublisher.send_d1_mirror``), so the app sees the task pending again.

Optional per deployment (``D1_ACCOUNT_ID``, ``D1_DATABASE_ID``, ``D1_API_TOKEN``). The follow-up
task ``videofleet.mirror_to_d1`` reads the task row and its ``videos`` row when it runs (not when
it was sent), so whichever mirror runs last writes the newest state, and D1's upsert refuses an
older one anyway (``schema.d1``). A D1 outage (429, 5xx, no answer) is retried with the fleet's
backoff until ``D1_MIRROR_EXPIRY_S`` has passed; it never touches the video's own result, which
was committed before the mirror was sent. After a longer outage ``videofleet d1 sync --since``
catches up.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

import cloudflare
from celery import Celery

from schema.d1 import execute, make_d1_client, mirror_statements
from schema.db import transient_db_errors
from schema.errors import D1Unavailable, DatabaseUnavailable
from schema.lifecycle import now_ms
from schema.message import D1_MIRROR_TASK_NAME
from workers import followup
from workers.app import app
from workers.context import get_deps, get_settings
from workers.followup import FollowupTask

logger = logging.getLogger(__name__)


def enqueue(celery_app: Celery, task_id: str) -> None:
    """Send the D1 mirror of an ended (or requeued) task, if the deployment has D1 configured."""
    settings = get_settings()
    if not settings.d1_enabled:
        return
    deadline_ms = now_ms() + settings.d1_mirror_expiry_s * 1000
    followup.send(
        celery_app, D1_MIRROR_TASK_NAME, ([task_id], deadline_ms), row_id=task_id, what="D1 mirror"
    )


@cache
def _client() -> cloudflare.Cloudflare:
    # Built on first use in the process that runs the task (a prefork child), never at import.
    return make_d1_client(get_settings())


class MirrorTask(FollowupTask):
    """Retries a mirror that D1 or the fleet's database could not take, until it expires."""

    autoretry_for = (D1Unavailable, DatabaseUnavailable)
    what = "D1 mirror"

    @staticmethod
    def rows(args: Any) -> str:
        """The mirrored task ids, the first argument."""
        return ",".join(str(i) for i in args[0]) if args and isinstance(args[0], list) else "?"


@app.task(bind=True, base=MirrorTask, name=D1_MIRROR_TASK_NAME)
def mirror_to_d1(self: MirrorTask, task_ids: list[str], deadline_ms: int) -> None:
    """Upsert the current task rows ``task_ids`` and their ``videos`` rows into D1."""
    if now_ms() > deadline_ms:
        logger.error(
            "Task %s: D1 mirror expired; run `videofleet d1 sync --since` to catch up",
            MirrorTask.rows((task_ids,)),
        )
        return
    settings = get_settings()
    with transient_db_errors(), get_deps().engine.connect() as conn:
        statements = mirror_statements(conn, task_ids)
    changed = execute(_client(), settings, statements)
    logger.info(
        "Task %s: mirrored to D1 (%d rows sent, %d changed, attempt %d)",
        MirrorTask.rows((task_ids,)),
        len(statements),
        changed,
        self.request.retries + 1,
    )
