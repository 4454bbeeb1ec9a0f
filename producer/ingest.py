"""From normalised events to task rows and published chains, idempotently.

Order matters: (1) insert the rows and commit, (2) claim each unpublished row by setting its
``workflow_id`` with a compare-and-set, (3) publish the chain for each claim. A row is thus never
published before it is committed, two deliveries of the same event race on (2) and only one
wins, and a failed publish releases its claim so the next delivery publishes it again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from schema.db import insert_ignoring_conflicts
from schema.errors import DatabaseUnavailable
from schema.lifecycle import now_ms
from schema.message import Action, ObjectEvent
from schema.status import Step, TaskStatus
from schema.tables import tasks

logger = logging.getLogger(__name__)


class Publisher(Protocol):
    """What ingest needs from the broker side (``ChainPublisher`` in production)."""

    def publish(self, task_id: str, *, workflow_id: str, start: Step = Step.VALIDATE) -> None: ...


class Result(StrEnum):
    """What ingesting one event did."""

    PUBLISHED = "published"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result for one event, reported back to whoever delivered it."""

    task_id: str
    key: str
    result: Result
    workflow_id: str | None = None


def ingest(engine: Engine, publisher: Publisher, events: Iterable[ObjectEvent]) -> list[Outcome]:
    """Record and publish ``events``; safe to call again with any of them.

    Raises:
        DatabaseUnavailable: the rows could not be written (nothing was published).
        BrokerUnavailable: a chain could not be published (its claim was released).
    """
    events = list(events)
    creates = _unique_creates(events)
    try:
        with engine.begin() as conn:
            _insert_rows(conn, creates)
        claims = _claim_unpublished(engine, [e.task_id for e in creates])
    except (OperationalError, InterfaceError) as exc:
        raise DatabaseUnavailable(f"database unavailable: {exc.__class__.__name__}") from exc
    for task_id, workflow_id in claims.items():
        _publish_or_release(engine, publisher, task_id, workflow_id)
    return [_outcome(event, claims) for event in events]


def _unique_creates(events: list[ObjectEvent]) -> list[ObjectEvent]:
    unique: dict[str, ObjectEvent] = {}
    for event in events:
        if event.action is Action.CREATED:
            unique.setdefault(event.task_id, event)
    return list(unique.values())


def _insert_rows(conn: sa.Connection, events: list[ObjectEvent]) -> None:
    if not events:
        return
    now = now_ms()
    rows = [
        {
            "id": e.task_id,
            "video_key": e.key,
            "bucket": e.bucket,
            "etag": e.etag,
            "status": TaskStatus.PENDING.value,
            "created_at": now,
            "updated_at": now,
            "retry_count": 0,
        }
        for e in events
    ]
    insert_ignoring_conflicts(conn, tasks, rows, conflict_columns=("id",))


def _claim_unpublished(engine: Engine, task_ids: list[str]) -> dict[str, str]:
    """Give each still-unpublished pending row a fresh workflow id; return those this call won."""
    claims: dict[str, str] = {}
    with engine.begin() as conn:
        for task_id in task_ids:
            workflow_id = str(uuid.uuid4())
            result = conn.execute(
                sa.update(tasks)
                .where(
                    tasks.c.id == task_id,
                    tasks.c.workflow_id.is_(None),
                    tasks.c.status == TaskStatus.PENDING.value,
                )
                .values(workflow_id=workflow_id, updated_at=now_ms())
            )
            if result.rowcount == 1:
                claims[task_id] = workflow_id
    return claims


def _publish_or_release(
    engine: Engine, publisher: Publisher, task_id: str, workflow_id: str
) -> None:
    try:
        publisher.publish(task_id, workflow_id=workflow_id)
    except Exception:
        # Release the claim so that a redelivery of the event publishes the row again.
        with engine.begin() as conn:
            conn.execute(
                sa.update(tasks)
                .where(tasks.c.id == task_id, tasks.c.workflow_id == workflow_id)
                .values(workflow_id=None, updated_at=now_ms())
            )
        raise
    logger.info("Task %s: published chain %s", task_id, workflow_id)


def _outcome(event: ObjectEvent, claims: dict[str, str]) -> Outcome:
    if event.action is not Action.CREATED:
        return Outcome(event.task_id, event.key, Result.IGNORED)
    workflow_id = claims.pop(event.task_id, None)
    if workflow_id is not None:
        return Outcome(event.task_id, event.key, Result.PUBLISHED, workflow_id)
    return Outcome(event.task_id, event.key, Result.DUPLICATE)
