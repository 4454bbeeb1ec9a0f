"""Delete handling: an object removed from the bucket takes its video, pending task and thumbnails.

For each deleted key: the ``videos`` row becomes ``deleted``; a task of that key that has not
started (``pending``) becomes ``failed`` with ``cancelled: the object was deleted``; the
thumbnails under ``THUMBNAILS_PREFIX + key + "/"`` are removed. A task already running is left to
finish or fail on its own (its next read of the object fails as missing). Every part is
idempotent, so a redelivered delete changes nothing and reports zeros.

Notifications arrive out of order: a delete can be delivered after the same key was uploaded
again. When a storage client is given, the key is checked first; if an object exists under it,
the delete is stale and ignored, so a re-upload is never cancelled by the delete before it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy.engine import Engine

from schema.errors import IllegalTransition, ObjectMissing, StorageUnavailable
from schema.lifecycle import now_ms, transition
from schema.message import ObjectEvent
from schema.status import TaskStatus, VideoStatus
from schema.storage import storage_error
from schema.tables import tasks, videos

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

CANCELLED_MESSAGE = "cancelled: the object was deleted"
# DeleteObjects takes at most 1,000 keys per request.
DELETE_BATCH = 1000


@dataclass(frozen=True, slots=True)
class DeletionReport:
    """What handling one delete changed; all zeros when it had been handled before."""

    stale: bool = False
    videos_deleted: int = 0
    tasks_cancelled: int = 0
    thumbnails_deleted: int = 0

    def summary(self) -> str:
        """One line for the delivering side and the log."""
        if self.stale:
            return "stale delete: an object exists under the key again"
        return (
            f"video rows deleted {self.videos_deleted}, pending tasks cancelled "
            f"{self.tasks_cancelled}, thumbnails removed {self.thumbnails_deleted}"
        )


def handle_delete(
    engine: Engine, storage: S3Client | None, event: ObjectEvent, *, thumbnails_prefix: str
) -> DeletionReport:
    """Apply one delete event (see the module docstring).

    Raises:
        StorageUnavailable: the bucket could not be read or written; retry the event.
    """
    if storage is not None and _exists(storage, event.bucket, event.key):
        logger.info("Object %s/%s: delete is stale, the key exists again", event.bucket, event.key)
        return DeletionReport(stale=True)
    videos_deleted, cancelled = _mark_deleted(engine, event)
    removed = 0
    if storage is None:
        logger.warning("Object %s: no storage client, thumbnails left in place", event.key)
    else:
        removed = delete_thumbnails(
            storage, event.bucket, prefix=f"{thumbnails_prefix}{event.key}/"
        )
    report = DeletionReport(
        videos_deleted=videos_deleted, tasks_cancelled=cancelled, thumbnails_deleted=removed
    )
    logger.info("Object %s/%s: deleted; %s", event.bucket, event.key, report.summary())
    return report


def _exists(storage: S3Client, bucket: str, key: str) -> bool:
    try:
        storage.head_object(Bucket=bucket, Key=key)
    except (BotoCoreError, ClientError) as exc:
        error = storage_error(exc, video_key=key)
        if isinstance(error, ObjectMissing):
            return False
        raise error from exc
    return True


def _mark_deleted(engine: Engine, event: ObjectEvent) -> tuple[int, int]:
    """Mark the video row deleted and cancel the key's pending tasks, in one transaction."""
    with engine.begin() as conn:
        videos_deleted = conn.execute(
            sa.update(videos)
            .where(videos.c.r2_key == event.key, videos.c.status != VideoStatus.DELETED.value)
            .values(status=VideoStatus.DELETED.value, updated_at=now_ms())
        ).rowcount
        pending = conn.execute(
            sa.select(tasks.c.id).where(
                tasks.c.video_key == event.key,
                sa.or_(tasks.c.bucket == event.bucket, tasks.c.bucket.is_(None)),
                tasks.c.status == TaskStatus.PENDING.value,
            )
        ).scalars()
        cancelled = 0
        for task_id in list(pending):
            try:
                transition(conn, task_id, TaskStatus.FAILED, error_message=CANCELLED_MESSAGE)
            except IllegalTransition:
                continue  # a worker started it meanwhile; it runs its course
            cancelled += 1
            logger.info("Task %s: %s", task_id, CANCELLED_MESSAGE)
    return max(videos_deleted, 0), cancelled


def delete_thumbnails(storage: S3Client, bucket: str, *, prefix: str) -> int:
    """Remove every object under ``prefix``; return how many were removed.

    Raises:
        StorageUnavailable: listing or deleting failed, or the store refused some keys.
    """
    removed = 0
    try:
        pages = storage.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            keys = [obj["Key"] for obj in page.get("Contents", [])]
            for start in range(0, len(keys), DELETE_BATCH):
                chunk = keys[start : start + DELETE_BATCH]
                response = storage.delete_objects(
                    Bucket=bucket,
                    Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True},
                )
                errors = response.get("Errors", [])
                if errors:
                    first = errors[0]
                    raise StorageUnavailable(
                        f"could not delete {len(errors)} thumbnails under {prefix}: "
                        f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}",
                        video_key=prefix,
                    )
                removed += len(chunk)
    except (BotoCoreError, ClientError) as exc:
        raise StorageUnavailable(
            f"storage error deleting thumbnails under {prefix}: {exc}", video_key=prefix
        ) from exc
    return removed
