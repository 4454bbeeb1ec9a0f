"""The one place a task's status changes: illegal moves are refused, ``updated_at`` always moves.

Each change is a compare-and-set ``UPDATE ... WHERE status IN (<legal sources>)``, so two
processes racing on the same task cannot both win.
"""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from schema.errors import IllegalTransition
from schema.status import TaskStatus, sources_of
from schema.tables import tasks


def now_ms() -> int:
    """Milliseconds since the Unix epoch: the unit of every ``*_at`` column."""
    return time.time_ns() // 1_000_000


def load_metadata(text: str | None) -> dict[str, Any]:
    """Parse the ``metadata`` TEXT column; an empty column is an empty document."""
    if not text:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def merge_metadata(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Merge ``patch`` into ``base``; nested objects merge too, so steps add to each other."""
    merged = dict(base)
    for key, value in patch.items():
        old = merged.get(key)
        merged[key] = (
            merge_metadata(old, value)
            if isinstance(old, dict) and isinstance(value, dict)
            else value
        )
    return merged


def transition(
    conn: Connection,
    task_id: str,
    to: TaskStatus,
    *,
    metadata_patch: dict[str, Any] | None = None,
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
        merged = merge_metadata(load_metadata(current.metadata), metadata_patch)
        values["metadata"] = json.dumps(merged, sort_keys=True)
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
