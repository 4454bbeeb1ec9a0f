"""Running ended tasks again, for admins: one compare-and-set claim, then one published chain.

The hand-off of ``producer.events.handoff``, as for ingest and recovery: (1) move the row
``failed``/``completed`` → ``pending`` with a fresh ``workflow_id`` through
``schema.lifecycle.transition``, guarded on the ``updated_at`` that was read, and commit;
(2) publish the chain from the chosen step; (3) if publishing fails, release the claim: the
requeue stands, the row stays ``pending`` without a chain, and the recovery sweep publishes it
once the broker is back (a status never moves backwards, so ``pending`` → ``completed`` cannot
happen). Two admins requeueing the same task at the same moment race on (1): one wins and
publishes, the other is told the task changed.

What is kept: earlier steps' metadata (a resumed chain reads ``metadata.probe``), and
``retry_count``, which counts every retry the task ever had across all its runs (each new chain
gets the full per-step retry budget again, since Celery counts a run's retries in the message).
What is reset: ``error_message`` (the old one moves into the requeue record). Each requeue is
recorded as ``metadata.requeues[]`` = ``{at, by, reason, from_step, error}``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from producer.events.handoff import Publisher, publish_claims
from producer.ops.taskquery import TaskFilter, TaskView, find_tasks
from schema.errors import IllegalTransition
from schema.lanes import Lane
from schema.lifecycle import now_ms, transition
from schema.metadata import Requeue, TaskMetadata
from schema.status import STEPS, Step, TaskStatus
from schema.tables import tasks

logger = logging.getLogger(__name__)


class RequeuePublisher(Publisher, Protocol):
    """Ingest's publisher, which also tells the D1 write-back of the requeued row."""

    def send_d1_mirror(self, task_ids: Sequence[str]) -> None: ...


class RequeueResult(StrEnum):
    """What a requeue request did to one task."""

    REQUEUED = "requeued"
    WOULD_REQUEUE = "would-requeue"
    REFUSED = "refused"
    NOT_FOUND = "not-found"


@dataclass(frozen=True, slots=True)
class Request:
    """Who asks for a requeue, why, and how."""

    by: str
    reason: str | None = None
    from_start: bool = False
    force: bool = False
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class RequeueOutcome:
    """The result for one task; ``detail`` says why a task was refused."""

    task_id: str
    result: RequeueResult
    key: str | None = None
    status: str | None = None
    from_step: Step | None = None
    workflow_id: str | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The JSON-ready form."""
        return {
            "task_id": self.task_id,
            "result": self.result.value,
            "key": self.key,
            "status": self.status,
            "from_step": None if self.from_step is None else self.from_step.value,
            "workflow_id": self.workflow_id,
            "detail": self.detail,
        }


def resume_step(view: TaskView) -> Step:
    """The step a chain for this row can start at: its recorded step, if what it reads is there.

    ``generate-thumbnails`` reads ``metadata.probe``; ``update-database`` reads
    ``metadata.thumbnails``. When those are missing the chain starts earlier.
    """
    try:
        step = Step(view.step) if view.step else Step.VALIDATE
    except ValueError:
        return Step.VALIDATE
    return min(step, view.metadata.first_unsaved_step(), key=STEPS.index)


def plan(view: TaskView, request: Request) -> Step | str:
    """The step to start from, or the reason the task may not be requeued (pure)."""
    status = TaskStatus(view.status)
    if status is TaskStatus.PENDING:
        return "pending: its chain is queued or about to run (if stuck, `videofleet recover`)"
    if status is TaskStatus.PROCESSING:
        return f"processing: a worker is running {view.step or 'it'}; wait for it to end"
    if status is TaskStatus.COMPLETED:
        if not request.force:
            return (
                "completed: requeue with --force (force: true in the admin API) to process it again"
            )
        return Step.VALIDATE  # nothing failed: a forced run is a full run
    return Step.VALIDATE if request.from_start else resume_step(view)


def requeue_task(
    engine: Engine, publisher: RequeuePublisher, task_id: str, request: Request
) -> RequeueOutcome:
    """Requeue one task (see the module docstring for the order of events).

    Raises:
        BrokerUnavailable: the chain could not be published now; the task stays requeued
            (``pending`` without a chain) and the recovery sweep publishes it later.
    """
    with engine.connect() as conn:
        row = conn.execute(sa.select(tasks).where(tasks.c.id == task_id)).one_or_none()
    if row is None:
        return RequeueOutcome(task_id, RequeueResult.NOT_FOUND, detail="no such task")
    view = TaskView.from_row(row)
    decision = plan(view, request)
    base = functools.partial(RequeueOutcome, task_id, key=view.video_key, status=view.status)
    if not isinstance(decision, Step):  # Step is a StrEnum: test for it, not for str
        return base(RequeueResult.REFUSED, detail=decision)
    if request.dry_run:
        return base(RequeueResult.WOULD_REQUEUE, from_step=decision)
    workflow_id = str(uuid.uuid4())
    record = Requeue(
        at=now_ms(),
        by=request.by,
        reason=request.reason,
        from_step=decision.value,
        error=view.error_message,
    )
    try:
        with engine.begin() as conn:
            transition(
                conn,
                task_id,
                TaskStatus.PENDING,
                metadata_patch=TaskMetadata(requeues=[*view.metadata.requeues, record]),
                expect={"updated_at": row.updated_at, "workflow_id": row.workflow_id},
                workflow_id=workflow_id,
                step=decision.value,
                error_message=None,
            )
    except IllegalTransition:
        return base(RequeueResult.REFUSED, detail="changed meanwhile (requeued by someone else?)")
    publish_claims(
        engine, publisher, [(task_id, workflow_id)], start=decision, lanes={task_id: Lane.BULK}
    )
    publisher.send_d1_mirror([task_id])
    logger.info(
        "Task %s: requeued from %s by %s (chain %s)", task_id, decision, request.by, workflow_id
    )
    return base(RequeueResult.REQUEUED, from_step=decision, workflow_id=workflow_id)


def requeue_many(
    engine: Engine,
    publisher: RequeuePublisher,
    task_ids: Iterable[str],
    request: Request,
    *,
    on_each: Callable[[RequeueOutcome], None] | None = None,
) -> list[RequeueOutcome]:
    """Requeue ``task_ids`` one by one; ``on_each`` sees each outcome (progress bars).

    Raises:
        BrokerUnavailable: stops at the first task that could not be published.
    """
    outcomes = []
    for task_id in task_ids:
        outcome = requeue_task(engine, publisher, task_id, request)
        outcomes.append(outcome)
        if on_each is not None:
            on_each(outcome)
    return outcomes


def matching_ids(engine: Engine, task_filter: TaskFilter, *, limit: int) -> list[str]:
    """Ids of the tasks a bulk requeue by filter works on, oldest first.

    A filter naming no status means ``failed``: a bulk requeue never sweeps up completed tasks
    by accident (name ``completed`` and add ``--force`` for that).
    """
    if not task_filter.statuses:
        task_filter = dataclasses.replace(task_filter, statuses=(TaskStatus.FAILED,))
    with engine.connect() as conn:
        return [v.id for v in find_tasks(conn, task_filter, limit=limit, oldest_first=True)]
