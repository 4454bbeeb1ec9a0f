"""Task and video statuses, and the one table of legal task transitions."""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    """A ``video_processing_tasks.status`` value; the values are exactly what the table stores."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


class VideoStatus(StrEnum):
    """A ``videos.status`` value."""

    UPLOADING = "uploading"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"
    DELETED = "deleted"


class Step(StrEnum):
    """The workflow's steps, named as in the reference design."""

    VALIDATE = "validate-video"
    THUMBNAILS = "generate-thumbnails"
    UPDATE = "update-database"


STEPS: tuple[Step, ...] = (Step.VALIDATE, Step.THUMBNAILS, Step.UPDATE)

# processing -> processing is legal: each step re-enters it, and a redelivered step does too.
# failed/completed -> pending is a requeue; processing -> pending and pending -> pending (a new
# chain for a task whose chain was lost) are stuck-task recovery.
ALLOWED: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.PENDING: frozenset({TaskStatus.PENDING, TaskStatus.PROCESSING, TaskStatus.FAILED}),
    TaskStatus.PROCESSING: frozenset(
        {TaskStatus.PROCESSING, TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.PENDING}
    ),
    TaskStatus.FAILED: frozenset({TaskStatus.PENDING}),
    TaskStatus.COMPLETED: frozenset({TaskStatus.PENDING}),
}


def sources_of(target: TaskStatus) -> frozenset[TaskStatus]:
    """Return the statuses from which ``target`` may be entered."""
    return frozenset(s for s, targets in ALLOWED.items() if target in targets)
