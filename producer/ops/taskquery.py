"""Finding task rows for people: filters shared by the CLI, the admin API and bulk requeue.

Parsing (``parse_age``) and the filter itself are pure; ``find_tasks``, ``count_by_status`` and
``get_task`` are the only queries. Rows come back as ``TaskView``s, the one JSON-ready shape
both the ``--json`` output and the HTTP API use.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from schema.lifecycle import now_ms
from schema.metadata import TaskMetadata, as_document
from schema.status import TaskStatus
from schema.tables import tasks

DEFAULT_LIMIT = 50
MAX_LIMIT = 10_000

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_age(text: str) -> float:
    """Seconds in an age such as ``90``, ``45s``, ``15m``, ``1h``, ``2d`` or ``1w``.

    Raises:
        ValueError: the text is not a number with an optional unit.
    """
    match = _AGE.match(text)
    if match is None:
        raise ValueError(f"not an age: {text!r} (use e.g. 90s, 15m, 1h, 2d)")
    number, unit = match.groups()
    return float(number) * _UNIT_S[unit or "s"]


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """Which tasks a person means; every field left empty matches everything.

    Ages count from ``updated_at`` (the last time anything happened to the task), which is what
    "failed more than an hour ago" or "stuck for 10 minutes" refer to.
    """

    statuses: tuple[TaskStatus, ...] = ()
    older_than_s: float | None = None
    newer_than_s: float | None = None
    key_prefix: str | None = None
    error_contains: str | None = None

    def clauses(self, *, now: int | None = None) -> list[sa.ColumnElement[bool]]:
        """The WHERE clauses of this filter, ages measured back from ``now`` (epoch ms)."""
        now = now_ms() if now is None else now
        where: list[sa.ColumnElement[bool]] = []
        if self.statuses:
            where.append(tasks.c.status.in_([s.value for s in self.statuses]))
        if self.older_than_s is not None:
            where.append(tasks.c.updated_at <= now - round(self.older_than_s * 1000))
        if self.newer_than_s is not None:
            where.append(tasks.c.updated_at >= now - round(self.newer_than_s * 1000))
        if self.key_prefix:
            where.append(tasks.c.video_key.startswith(self.key_prefix, autoescape=True))
        if self.error_contains:
            where.append(tasks.c.error_message.contains(self.error_contains, autoescape=True))
        return where


@dataclass(frozen=True, slots=True)
class TaskView:
    """A task row as people read it; times stay epoch milliseconds, as in the table."""

    id: str
    video_key: str
    status: str
    step: str | None
    workflow_id: str | None
    created_at: int
    updated_at: int
    error_message: str | None
    retry_count: int
    bucket: str | None
    video_id: str | None
    metadata: TaskMetadata = field(default_factory=TaskMetadata)

    @classmethod
    def from_row(cls, row: Any) -> TaskView:
        """Build the view of one ``video_processing_tasks`` row."""
        return cls(
            id=row.id,
            video_key=row.video_key,
            status=row.status,
            step=row.step,
            workflow_id=row.workflow_id,
            created_at=row.created_at,
            updated_at=row.updated_at,
            error_message=row.error_message,
            retry_count=row.retry_count or 0,
            bucket=row.bucket,
            video_id=row.video_id,
            metadata=row.metadata,
        )

    def as_dict(self) -> dict[str, Any]:
        """The JSON-ready form."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {**fields, "metadata": as_document(self.metadata)}


def find_tasks(
    conn: Connection,
    task_filter: TaskFilter,
    *,
    limit: int = DEFAULT_LIMIT,
    oldest_first: bool = False,
) -> list[TaskView]:
    """Tasks matching ``task_filter``, newest first (by ``updated_at``) unless ``oldest_first``."""
    order = tasks.c.updated_at.asc() if oldest_first else tasks.c.updated_at.desc()
    rows = conn.execute(
        sa.select(tasks)
        .where(*task_filter.clauses())
        .order_by(order, tasks.c.id)
        .limit(min(max(limit, 0), MAX_LIMIT))
    ).all()
    return [TaskView.from_row(r) for r in rows]


def count_by_status(conn: Connection, task_filter: TaskFilter) -> dict[str, int]:
    """How many tasks match ``task_filter``, per status (every status present, zeros too)."""
    counts = {s.value: 0 for s in TaskStatus}
    rows = conn.execute(
        sa.select(tasks.c.status, sa.func.count())
        .where(*task_filter.clauses())
        .group_by(tasks.c.status)
    ).all()
    for status, count in rows:
        counts[str(status)] = int(count)
    return counts


def get_task(conn: Connection, task_id: str) -> TaskView | None:
    """One task by id, or None."""
    row = conn.execute(sa.select(tasks).where(tasks.c.id == task_id)).one_or_none()
    return None if row is None else TaskView.from_row(row)
