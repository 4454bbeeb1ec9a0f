"""Stuck-task recovery: republish tasks whose chain is gone, and give up on hopeless ones.

A task is stuck when no chain will ever move it on:

- ``pending`` for longer than ``RECOVERY_PENDING_AFTER_S`` with no message of its chain in the
  broker (the publish failed and no redelivery came, or the broker lost the message);
- ``processing`` with ``updated_at`` older than ``STEP_TIME_LIMIT_S + RECOVERY_MARGIN_S`` (no
  step can run longer than its hard limit) and no message of its chain in the broker (a step
  waiting for a retry countdown, or queued behind a backlog, still has one).

Each stuck task is published again from its step with a fresh ``workflow_id``, recorded in
``metadata.recoveries[]``; a task found stuck again after ``RECOVERY_MAX_ATTEMPTS`` recoveries
(counted since its last requeue) goes ``failed`` with "stuck in <step> N times; gave up".

Two recoverers never both republish a task: the claim is a compare-and-set on the status, the
``workflow_id`` and the ``updated_at`` they read, committed before publishing.
"""

from __future__ import annotations

import functools
import json
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
from sqlalchemy.exc import InterfaceError, OperationalError

from producer.ingest import Publisher
from producer.requeue import resume_step
from producer.taskquery import TaskView
from schema.errors import IllegalTransition, TransientError
from schema.lifecycle import now_ms, transition
from schema.settings import Settings
from schema.status import Step, TaskStatus, VideoStatus
from schema.tables import tasks, videos

logger = logging.getLogger(__name__)


class LiveChains(Protocol):
    """What recovery needs from the broker (``producer.inflight.Inflight`` in production)."""

    def live_roots(self) -> set[str]: ...


class Result(StrEnum):
    """What recovery did with one stuck task."""

    REPUBLISHED = "republished"
    GAVE_UP = "gave-up"
    CHANGED = "changed"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result for one stuck task."""

    task_id: str
    key: str
    result: Result
    status: str
    step: Step
    attempts: int
    workflow_id: str | None = None
    detail: str = ""


def thresholds_ms(settings: Settings) -> tuple[int, int]:
    """How long a task may stay ``pending`` and ``processing`` without news, in ms (pure)."""
    pending = settings.recovery_pending_after_s * 1000
    processing = (settings.step_time_limit_s + settings.recovery_margin_s) * 1000
    return pending, processing


def recovery_attempts(metadata: dict[str, Any]) -> int:
    """Recoveries since the task's last requeue: a requeue gives a task a fresh start (pure)."""
    requeues = metadata.get("requeues") or []
    since = max((int(r.get("at", 0)) for r in requeues), default=0)
    return sum(1 for r in metadata.get("recoveries") or [] if int(r.get("at", 0)) >= since)


def find_stale(engine: Engine, settings: Settings, *, now: int) -> list[TaskView]:
    """Pending and processing tasks with no news for longer than their threshold."""
    pending_ms, processing_ms = thresholds_ms(settings)
    stale = sa.or_(
        sa.and_(tasks.c.status == TaskStatus.PENDING.value, tasks.c.updated_at < now - pending_ms),
        sa.and_(
            tasks.c.status == TaskStatus.PROCESSING.value,
            tasks.c.updated_at < now - processing_ms,
        ),
    )
    with engine.connect() as conn:
        rows = conn.execute(sa.select(tasks).where(stale).order_by(tasks.c.updated_at)).all()
    return [TaskView.from_row(r) for r in rows]


def recover_once(
    engine: Engine, publisher: Publisher, live: LiveChains, settings: Settings
) -> list[Outcome]:
    """One sweep: find stuck tasks and republish or fail each.

    The rows are read before the broker, so a message that a worker takes meanwhile shows up as
    a changed ``updated_at`` and the claim fails.

    Raises:
        BrokerUnavailable: the broker could not be read, or a chain not published (that task is
            left ``pending`` without a chain, so the next sweep tries it again).
    """
    stale = find_stale(engine, settings, now=now_ms())
    if not stale:
        return []
    roots = live.live_roots()
    outcomes = []
    for view in stale:
        if view.workflow_id is not None and view.workflow_id in roots:
            continue
        outcomes.append(_recover(engine, publisher, view, settings))
    return outcomes


def _recover(engine: Engine, publisher: Publisher, view: TaskView, settings: Settings) -> Outcome:
    step = resume_step(view)
    attempts = recovery_attempts(view.metadata)
    record = {"at": now_ms(), "status": view.status, "step": step.value}
    recoveries = [*(view.metadata.get("recoveries") or []), record]
    expect = {"updated_at": view.updated_at, "workflow_id": view.workflow_id}
    base = functools.partial(
        Outcome, task_id=view.id, key=view.video_key, status=view.status, step=step
    )
    if attempts >= settings.recovery_max_attempts:
        message = f"stuck in {step} {attempts + 1} times; gave up"
        try:
            with engine.begin() as conn:
                transition(
                    conn,
                    view.id,
                    TaskStatus.FAILED,
                    metadata_patch={"recoveries": [*recoveries[:-1], {**record, "gave_up": True}]},
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
            return base(result=Result.CHANGED, attempts=attempts)
        logger.error("Task %s: %s", view.id, message)
        return base(result=Result.GAVE_UP, attempts=attempts, detail=message)
    workflow_id = str(uuid.uuid4())
    if not _claim(engine, view, step, workflow_id, recoveries, expect):
        return base(result=Result.CHANGED, attempts=attempts)
    try:
        publisher.publish(view.id, workflow_id=workflow_id, start=step)
    except Exception:
        _release(engine, view, workflow_id)
        raise
    logger.warning(
        "Task %s: was stuck %s in %s; republished as %s (recovery %d)",
        view.id,
        view.status,
        step,
        workflow_id,
        attempts + 1,
    )
    return base(result=Result.REPUBLISHED, attempts=attempts + 1, workflow_id=workflow_id)


def _claim(
    engine: Engine,
    view: TaskView,
    step: Step,
    workflow_id: str,
    recoveries: list[dict[str, Any]],
    expect: dict[str, Any],
) -> bool:
    """Put the task back to ``pending`` under a new chain id, unless it moved meanwhile."""
    try:
        with engine.begin() as conn:
            if view.status == TaskStatus.PROCESSING.value:
                transition(
                    conn,
                    view.id,
                    TaskStatus.PENDING,
                    metadata_patch={"recoveries": recoveries},
                    expect=expect,
                    workflow_id=workflow_id,
                    step=step.value,
                )
                return True
            # pending stays pending: only the chain id changes, the same claim ingest makes.
            metadata = {**view.metadata, "recoveries": recoveries}
            result = conn.execute(
                sa.update(tasks)
                .where(
                    tasks.c.id == view.id,
                    tasks.c.status == TaskStatus.PENDING.value,
                    *(tasks.c[k].is_not_distinct_from(v) for k, v in expect.items()),
                )
                .values(
                    workflow_id=workflow_id,
                    step=step.value,
                    metadata=_dumps(metadata),
                    updated_at=now_ms(),
                )
            )
            return bool(result.rowcount == 1)
    except IllegalTransition:
        return False


def _release(engine: Engine, view: TaskView, workflow_id: str) -> None:
    # No chain went out: leave the task pending without one, as a failed ingest publish does,
    # and drop the recovery record, so the next sweep tries again without using up an attempt.
    with engine.begin() as conn:
        conn.execute(
            sa.update(tasks)
            .where(tasks.c.id == view.id, tasks.c.workflow_id == workflow_id)
            .values(workflow_id=None, metadata=_dumps(view.metadata), updated_at=now_ms())
        )


def _dumps(metadata: dict[str, Any]) -> str:
    return json.dumps(metadata, sort_keys=True)


def run_forever(
    sweep: Callable[[], list[Outcome]],
    *,
    interval_s: float,
    report: Callable[[list[Outcome]], None],
    stop: threading.Event,
) -> None:
    """Sweep every ``interval_s`` until ``stop`` is set; a broker or database hiccup skips one."""
    while not stop.is_set():
        started = time.monotonic()
        try:
            report(sweep())
        except (TransientError, OperationalError, InterfaceError) as exc:
            logger.warning("Recovery sweep failed, trying again in %.0f s: %s", interval_s, exc)
        stop.wait(max(0.0, interval_s - (time.monotonic() - started)))
