"""The one place a task's status changes: illegal moves are refused, ``updated_at`` always moves.

Each change is a compare-and-set ``UPDATE ... WHERE status IN (<legal sources>)``, so two
processes racing on the same task cannot both win.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from schema.errors import IllegalTransition
from schema.metadata import TaskMetadata, merge
from schema.status import TaskStatus, sources_of
from schema.tables import tasks


def now_ms() -> int:
    """Milliseconds since the Unix epoch: the unit of every ``*_at`` column."""
    return time.time_ns() // 1_000_000


def transition(
    conn: Connection,
    task_id: str,
    to: TaskStatus,
    *,
    metadata_patch: TaskMetadata | None = None,
    expect: dict[str, Any] | None = None,
    **values: Any,
) -> None:
    """Move ``task_id`` to ``to``, merging ``metadata_patch`` into its metadata.

    ``expect`` names columns that must still hold the given values (e.g. the ``updated_at`` a
    caller read), making the move a compare-and-set on more than the status.

    Raises:
        IllegalTransition: the task does not exist, its status may not become ``to``, or a
            column named in ``expect`` changed meanwhile.
    """
    current = conn.execute(
        sa.select(tasks.c.status, tasks.c.metadata).where(tasks.c.id == task_id)
    ).one_or_none()
    if current is None or TaskStatus(current.status) not in sources_of(to):
        raise IllegalTransition(task_id, None if current is None else current.status, to)
    if metadata_patch is not None:
        values["metadata"] = merge(current.metadata, metadata_patch)
    guards = [tasks.c[name].is_not_distinct_from(value) for name, value in (expect or {}).items()]
    result = conn.execute(
        sa.update(tasks)
        .where(
            tasks.c.id == task_id,
            tasks.c.status.in_([s.value for s in sources_of(to)]),
            *guards,
        )
        .values(status=to.value, updated_at=now_ms(), **values)
    )
    if result.rowcount != 1:
        raise IllegalTransition(task_id, current.status, to)
