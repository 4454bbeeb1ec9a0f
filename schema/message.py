"""What travels between producer and workers: the queue, the task names, the normalised event.

The producer publishes a Celery chain on ``QUEUE`` whose signatures name the tasks below; each
task takes the task row's id as its only argument (immutable signatures), and reads everything
else from the database, so a chain can be restarted at any step from the row alone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from schema.status import Step

QUEUE = "video-events"

TASK_NAMES: dict[Step, str] = {
    Step.VALIDATE: "videofleet.validate_video",
    Step.THUMBNAILS: "videofleet.generate_thumbnails",
    Step.UPDATE: "videofleet.update_database",
}

# The completion webhook's delivery task: one per completed or failed task row, when configured.
NOTIFY_TASK_NAME = "videofleet.notify_completion"
# The D1 write-back: mirrors task rows (and their videos rows) into Cloudflare D1, when configured.
D1_MIRROR_TASK_NAME = "videofleet.mirror_to_d1"

# Fixed namespace so that every process derives the same task id from the same object version.
_TASK_ID_NAMESPACE = uuid.UUID("6f1c6f2e-7a55-4a55-9d1e-0c1d2b3a4f5e")


class Action(StrEnum):
    """What happened to the object, whichever source reported it."""

    CREATED = "created"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class ObjectEvent:
    """One object change, normalised from an R2, S3 or MinIO notification."""

    bucket: str
    key: str
    action: Action
    size: int | None = None
    etag: str | None = None
    event_time: str | None = None
    source: str = "r2"

    @property
    def task_id(self) -> str:
        """The task row's id: one object version (bucket, key, eTag) is one task, any source."""
        return task_id_for(self.bucket, self.key, self.etag)


def task_id_for(bucket: str, key: str, etag: str | None) -> str:
    """Derive the deterministic task id of an object version."""
    normalised = normal_etag(etag or "")
    return str(uuid.uuid5(_TASK_ID_NAMESPACE, f"{bucket}\x00{key}\x00{normalised}"))


def normal_etag(etag: str) -> str:
    """An ETag as notifications spell it: no quotes, lower case (S3 quotes it in headers)."""
    return etag.strip().strip('"').lower()
