"""Stuck-task recovery: give dead workers' messages back, republish tasks whose chain is gone.

Each sweep, run every ``RECOVERY_INTERVAL_S`` by ``videofleet recover`` (a long-running process
in every deploy file):

1. asks the live workers what they hold and gives back to the queue every unacknowledged
   message no live worker holds (its worker died; ``producer.ops.inflight``), so a killed worker's
   steps run again within one sweep instead of after the hour-long visibility timeout;
2. finds ``pending`` and ``processing`` rows unchanged for ``RECOVERY_PENDING_AFTER_S`` whose
   chain has no message in the broker and which no live worker holds (the broker lost it, e.g.
   a Redis restart without persistence, or a producer died before publishing), and publishes
   each again from the first step without a saved result, with a fresh ``workflow_id``
   (``producer.events.handoff``), recorded in ``metadata.recoveries[]``;
3. fails a task found stuck again after ``RECOVERY_MAX_ATTEMPTS`` recoveries (counted since its
   last requeue) with "stuck in <step> N times; gave up".

So a stuck row is back in the queue at most ``RECOVERY_PENDING_AFTER_S + RECOVERY_INTERVAL_S
+ RECOVERY_INSPECT_TIMEOUT_S`` after its last change (77 s with the defaults), a dead worker's
message at most ``RECOVERY_INTERVAL_S + RECOVERY_INSPECT_TIMEOUT_S`` after the worker died (17 s)
once it is older than ``RECOVERY_UNACKED_GRACE_S``.

Two recoverers never both republish a task: the claim is a compare-and-set on the status, the
``workflow_id`` and the ``updated_at`` they read, committed before publishing. Status changes go
through ``schema.lifecycle.transition``.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from producer.events.handoff import Publisher, publish_claims
from producer.ops.inflight import BrokerView
from producer.ops.taskquery import TaskView
from schema.db import transient_db_errors
from schema.errors import IllegalTransition, TransientError
from schema.lanes import Lane
from schema.lifecycle import now_ms, transition
from schema.metadata import Recovery, TaskMetadata
from schema.settings import Settings
from schema.status import Step, TaskStatus, VideoStatus
from schema.tables import tasks, videos

logger = logging.getLogger(__name__)


class LiveChains(Protocol):
    """What recovery needs from the broker (``producer.ops.inflight.Inflight`` in production)."""

    def look(self) -> BrokerView: ...


class RecoveryResult(StrEnum):
    """What recovery did with one stuck task."""

    REPUBLISHED = "republished"
    GAVE_UP = "gave-up"
    CHANGED = "changed"


@dataclass(frozen=True, slots=True)
class RecoveryOutcome:
    """The result for one stuck task."""

    task_id: str
    key: str
    result: RecoveryResult
    status: str
    step: Step
    attempts: int
    workflow_id: str | None = None
    detail: str = ""


def find_stale(engine: Engine, settings: Settings, *, now: int) -> list[TaskView]:
    """Pending and processing tasks unchanged for longer than ``RECOVERY_PENDING_AFTER_S``."""
    stale = sa.and_(
        tasks.c.status.in_([TaskStatus.PENDING.value, TaskStatus.PROCESSING.value]),
        tasks.c.updated_at < now - settings.recovery_pending_after_s * 1000,
    )
    with engine.connect() as conn:
        rows = conn.execute(sa.select(tasks).where(stale).order_by(tasks.c.updated_at)).all()
    return [TaskView.from_row(r) for r in rows]


def recover_once(
    engine: Engine, publisher: Publisher, live: LiveChains, settings: Settings
) -> list[RecoveryOutcome]:
    """One sweep: give dead workers' messages back, then republish or fail each stuck task.

    The rows are read before the broker, so a message that a worker takes meanwhile shows up as
    a changed ``updated_at`` and the claim fails.

    Raises:
        BrokerUnavailable: the broker could not be read, or a chain not published (that task is
            left ``pending`` without a chain, so the next sweep tries it again).
    """
    stale = find_stale(engine, settings, now=now_ms())
    view = live.look()
    outcomes = []
    for task in stale:
        if task.id in view.held_rows:
            continue
        if task.workflow_id is not None and task.workflow_id in view.roots:
            continue
        outcomes.append(_recover(engine, publisher, task, settings))
    return outcomes


def _recover(
    engine: Engine, publisher: Publisher, view: TaskView, settings: Settings
) -> RecoveryOutcome:
    step = view.metadata.first_unsaved_step()
    attempts = view.metadata.recoveries_since_requeue()
    record = Recovery(at=now_ms(), status=view.status, step=step.value)
    recoveries = [*view.metadata.recoveries, record]
    expect = {"updated_at": view.updated_at, "workflow_id": view.workflow_id}
    base = functools.partial(
        RecoveryOutcome, task_id=view.id, key=view.video_key, status=view.status, step=step
    )
    if attempts >= settings.recovery_max_attempts:
        message = f"stuck in {step} {attempts + 1} times; gave up"
        try:
            with engine.begin() as conn:
                transition(
                    conn,
                    view.id,
                    TaskStatus.FAILED,
                    metadata_patch=TaskMetadata(
                        recoveries=[*recoveries[:-1], record.model_copy(update={"gave_up": True})]
                    ),
                    expect=expect,
                    error_message=message,
                    step=step.value,
                )
                if view.video_id is not None:
                    conn.execute(
                        sa.update(videos)
                        .where(videos.c.id == view.video_id)
                        .values(status=VideoStatus.FAILED.value, updated_at=now_ms())
                    )
        except IllegalTransition:
            return base(result=RecoveryResult.CHANGED, attempts=attempts)
        logger.error("Task %s: %s", view.id, message)
        return base(result=RecoveryResult.GAVE_UP, attempts=attempts, detail=message)
    workflow_id = str(uuid.uuid4())
    if not _claim(engine, view, step, workflow_id, recoveries, expect):
        return base(result=RecoveryResult.CHANGED, attempts=attempts)
    publish_claims(
        engine, publisher, [(view.id, workflow_id)], start=step, lanes={view.id: Lane.BULK}
    )
    logger.warning(
        "Task %s: was stuck %s in %s; republished as %s (recovery %d)",
        view.id,
        view.status,
        step,
        workflow_id,
        attempts + 1,
    )
    return base(result=RecoveryResult.REPUBLISHED, attempts=attempts + 1, workflow_id=workflow_id)


def _claim(
    engine: Engine,
    view: TaskView,
    step: Step,
    workflow_id: str,
    recoveries: list[Recovery],
    expect: dict[str, Any],
) -> bool:
    """Put the task back to ``pending`` under a new chain id, unless it moved meanwhile."""
    try:
        with engine.begin() as conn:
            transition(
                conn,
                view.id,
                TaskStatus.PENDING,
                metadata_patch=TaskMetadata(recoveries=recoveries),
                expect=expect,
                workflow_id=workflow_id,
                step=step.value,
            )
            return True
    except IllegalTransition:
        return False


def run_forever(
    sweep: Callable[[], list[RecoveryOutcome]],
    *,
    interval_s: float,
    report: Callable[[list[RecoveryOutcome]], None],
    stop: threading.Event,
) -> None:
    """Sweep every ``interval_s`` until ``stop`` is set; a broker or database hiccup skips one."""
    while not stop.is_set():
        started = time.monotonic()
        try:
            with transient_db_errors():
                report(sweep())
        except TransientError as exc:
            logger.warning("Recovery sweep failed, trying again in %.0f s: %s", interval_s, exc)
        stop.wait(max(0.0, interval_s - (time.monotonic() - started)))
