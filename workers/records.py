"""The worker's reads and writes of task and video rows; status changes go via ``transition``.

One write per step boundary: a step's start (``begin_step``, which counts its run) and its end
(``save_step``, ``save_validated``, ``complete``); the update step is its own end.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from schema.db import insert_ignoring_conflicts, transient_db_errors
from schema.errors import IllegalTransition, PermanentError
from schema.lifecycle import now_ms, transition
from schema.metadata import TaskMetadata, merge
from schema.status import Step, TaskStatus, VideoStatus
from schema.tables import tasks, videos

logger = logging.getLogger(__name__)

_VIDEO_ID_NAMESPACE = uuid.UUID("0b5f4a8e-3c1d-4e7a-9f2b-6d8c1a2e3f40")


@dataclass(frozen=True, slots=True)
class TaskRow:
    """The columns of a task row a step works from."""

    id: str
    video_key: str
    bucket: str | None
    status: TaskStatus
    video_id: str | None
    retry_count: int
    metadata: TaskMetadata
    error_message: str | None = None
    etag: str | None = None


def load(conn: Connection, task_id: str) -> TaskRow:
    """Read one task row.

    Raises:
        PermanentError: there is no such task (a message for a deleted row).
    """
    row = conn.execute(sa.select(tasks).where(tasks.c.id == task_id)).one_or_none()
    if row is None:
        raise PermanentError(f"Task {task_id} not found")
    return TaskRow(
        id=row.id,
        video_key=row.video_key,
        bucket=row.bucket,
        status=TaskStatus(row.status),
        video_id=row.video_id,
        retry_count=row.retry_count or 0,
        metadata=row.metadata,
        error_message=row.error_message,
        etag=row.etag,
    )


def begin_step(engine: Engine, task_id: str, step: Step) -> TaskRow | None:
    """Mark the task as running ``step``; return None when it already completed (a redelivery).

    ``metadata.runs`` counts how often each step started, so redeliveries are visible.
    """
    with transient_db_errors(), engine.begin() as conn:
        row = load(conn, task_id)
        if row.status is TaskStatus.COMPLETED:
            return None
        runs = {**row.metadata.runs, step.value: row.metadata.runs.get(step.value, 0) + 1}
        transition(
            conn,
            task_id,
            TaskStatus.PROCESSING,
            step=step.value,
            error_message=None,
            metadata_patch=TaskMetadata(runs=runs),
        )
        return row


def save_step(engine: Engine, task_id: str, step: Step, patch: TaskMetadata) -> None:
    """Record what ``step`` learnt, staying in ``processing``."""
    with transient_db_errors(), engine.begin() as conn:
        transition(conn, task_id, TaskStatus.PROCESSING, step=step.value, metadata_patch=patch)


def save_validated(engine: Engine, row: TaskRow, patch: TaskMetadata, *, size_bytes: int) -> None:
    """Record the probe and link the task to its ``videos`` row, in one transaction.

    Raises:
        PermanentError: the task names a video id whose row does not exist (the design's
            "Video <id> not found").
    """
    with transient_db_errors(), engine.begin() as conn:
        video_id = _attach_video(conn, row, size_bytes=size_bytes)
        transition(
            conn,
            row.id,
            TaskStatus.PROCESSING,
            step=Step.VALIDATE.value,
            video_id=video_id,
            metadata_patch=patch,
        )


def _attach_video(conn: Connection, row: TaskRow, *, size_bytes: int) -> str:
    """The task's ``videos`` row, created for objects uploaded straight to the bucket."""
    if row.video_id is not None:
        found = conn.execute(sa.select(videos.c.id).where(videos.c.id == row.video_id)).scalar()
        if found is None:
            raise PermanentError(f"Video {row.video_id} not found")
        video_id = row.video_id
    else:
        now = now_ms()
        insert_ignoring_conflicts(
            conn,
            videos,
            {
                "id": str(uuid.uuid5(_VIDEO_ID_NAMESPACE, row.video_key)),
                "r2_key": row.video_key,
                "filename": row.video_key.rsplit("/", 1)[-1],
                "size_bytes": size_bytes,
                "status": VideoStatus.PROCESSING.value,
                "created_at": now,
                "updated_at": now,
            },
            conflict_columns=("r2_key",),
        )
        video_id = conn.execute(
            sa.select(videos.c.id).where(videos.c.r2_key == row.video_key)
        ).scalar_one()
    # The size of the version being processed: an overwritten key's row follows its bytes.
    conn.execute(
        sa.update(videos)
        .where(videos.c.id == video_id)
        .values(status=VideoStatus.PROCESSING.value, size_bytes=size_bytes, updated_at=now_ms())
    )
    return video_id


def complete(engine: Engine, task_id: str, *, started: float) -> TaskRow | None:
    """Finish the task and mark its video ready, in one transaction; None if it had completed.

    The update step has no separate start: this one write counts its run, adds its time
    (since ``started``, a ``time.monotonic()`` value) and the total to ``timings_s``, and makes
    the poster (``Thumbnails.poster``) the video's ``thumbnail_url``. Returns the row as
    completed.
    """
    with transient_db_errors(), engine.begin() as conn:
        row = load(conn, task_id)
        if row.status is TaskStatus.COMPLETED:
            return None
        meta = row.metadata
        timings = {**meta.timings_s, Step.UPDATE.value: round(time.monotonic() - started, 3)}
        timings["total"] = round(sum(v for k, v in timings.items() if k != "total"), 3)
        patch = TaskMetadata(
            runs={**meta.runs, Step.UPDATE.value: meta.runs.get(Step.UPDATE.value, 0) + 1},
            timings_s=timings,
        )
        transition(
            conn,
            task_id,
            TaskStatus.COMPLETED,
            step=Step.UPDATE.value,
            metadata_patch=patch,
            error_message=None,
        )
        if row.video_id is not None:
            poster = meta.thumbnails.poster if meta.thumbnails is not None else None
            conn.execute(
                sa.update(videos)
                .where(videos.c.id == row.video_id)
                .values(status=VideoStatus.READY.value, thumbnail_url=poster, updated_at=now_ms())
            )
        return replace(row, status=TaskStatus.COMPLETED, metadata=merge(meta, patch))


def fail(
    engine: Engine, task_id: str, *, step: Step, message: str, error_class: str | None = None
) -> TaskRow | None:
    """Record the final failure of ``step``; a task that already ended is left as it is.

    ``error_class`` (the exception's class name) goes to ``metadata.error_class``, where the
    metrics count failures by cause. Returns the row as it was before, or None when it had
    already ended and was not marked failed.

    Raises:
        DatabaseUnavailable: the failure could not be written.
    """
    patch = None if error_class is None else TaskMetadata(error_class=error_class)
    with transient_db_errors(), engine.begin() as conn:
        try:
            row = load(conn, task_id)
            transition(
                conn,
                task_id,
                TaskStatus.FAILED,
                step=step.value,
                error_message=message,
                metadata_patch=patch,
            )
        except IllegalTransition:
            logger.warning("Task %s: already ended, not marking it failed (%s)", task_id, message)
            return None
        if row.video_id is not None:
            conn.execute(
                sa.update(videos)
                .where(videos.c.id == row.video_id)
                .values(status=VideoStatus.FAILED.value, updated_at=now_ms())
            )
        return row


def count_retries(
    engine: Engine,
    task_id: str,
    *,
    step: Step,
    message_id: str,
    retries: int,
    reason: str | None = None,
    error_class: str | None = None,
) -> None:
    """Record that the step message ``message_id`` has had ``retries`` retries.

    Celery keeps a message's id across its retries and counts them in ``request.retries``, so
    ``metadata.retries`` (message id -> retries) makes this idempotent: ``retry_count`` grows
    only by retries not recorded before. ``on_retry`` calls it with the retry about to run and
    the retried run calls it again when it starts, so a count that the database refused once is
    written then, and ``retry_count`` stays the number of retries that ran, across requeues.
    ``reason`` replaces ``error_message``; ``error_class`` goes to ``metadata.last_retry_class``,
    where the metrics count retries by cause.

    Raises:
        DatabaseUnavailable: nothing could be written.
    """
    with transient_db_errors(), engine.begin() as conn:
        # Locked: on_retry and the retried run may write at the same moment.
        row = conn.execute(
            sa.select(tasks.c.retry_count, tasks.c.metadata)
            .where(tasks.c.id == task_id)
            .with_for_update()
        ).one_or_none()
        if row is None:
            return
        recorded = row.metadata.retries.get(message_id, 0)
        added = max(0, retries - recorded)
        if added == 0 and reason is None:
            return
        patch = TaskMetadata(retries={**row.metadata.retries, message_id: max(retries, recorded)})
        if error_class is not None:
            patch.last_retry_class = error_class
        values: dict[str, Any] = {
            "retry_count": (row.retry_count or 0) + added,
            "metadata": merge(row.metadata, patch),
            "step": step.value,
            "updated_at": now_ms(),
        }
        if reason is not None:
            values["error_message"] = reason
        conn.execute(sa.update(tasks).where(tasks.c.id == task_id).values(**values))
