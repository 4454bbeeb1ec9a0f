"""A video's status for its owner: the row, its latest task's facts, and links that caches reuse.

The page polls this while the fleet works. Thumbnails and the storyboard get stable links
(``producer.readside.links``: public, or presigned at the start of a window); the video's own URL is
always presigned. For a given row state and link window the document is byte-for-byte the same,
which is what lets ``producer.web.videos`` answer ``If-None-Match`` with 304 and
``producer.status_cache`` share one database read among every poller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from producer.readside.links import ObjectLinks
from schema.errors import UploadNotFound
from schema.metadata import Storyboard, TaskMetadata, as_document
from schema.settings import Settings
from schema.tables import tasks, videos

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def describe(
    video_id: str, *, owner: str, settings: Settings, engine: Engine, s3: S3Client, now_s: float
) -> dict[str, Any]:
    """The status document of ``video_id`` (see ``VideoStatusOut`` in ``producer.web.videos``).

    Raises:
        UploadNotFound: no such video, or not ``owner``'s.
    """
    with engine.connect() as conn:
        video = conn.execute(sa.select(videos).where(videos.c.id == video_id)).one_or_none()
        if video is None or video.owner != owner:
            raise UploadNotFound(f"no video {video_id} of yours")
        task = conn.execute(
            sa.select(tasks)
            .where(tasks.c.video_key == video.r2_key)
            .order_by(tasks.c.created_at.desc(), tasks.c.id)
            .limit(1)
        ).one_or_none()
    bucket = (task.bucket if task is not None else None) or settings.s3_bucket
    links = ObjectLinks(s3, settings, bucket, now_s=now_s)
    metadata: TaskMetadata = task.metadata if task is not None else TaskMetadata()
    thumbs = metadata.thumbnails
    times = thumbs.times_s if thumbs is not None else []
    thumbnails = [
        {"key": key, "url": links.derived(key), "atS": times[i] if i < len(times) else None}
        for i, key in enumerate(thumbs.keys if thumbs is not None else [])
    ]
    document = as_document(metadata)
    return {
        "videoId": video.id,
        "key": video.r2_key,
        "filename": video.filename,
        "contentType": video.content_type,
        "sizeBytes": video.size_bytes,
        "status": video.status,
        "createdAt": video.created_at,
        "updatedAt": video.updated_at,
        "task": None
        if task is None
        else {
            "id": task.id,
            "status": task.status,
            "step": task.step,
            "error": task.error_message,
            "retryCount": task.retry_count or 0,
        },
        "metadata": {k: document[k] for k in ("probe", "timings_s") if k in document},
        "thumbnails": thumbnails,
        "storyboard": _storyboard(metadata.storyboard, links),
        "videoUrl": links.private(video.r2_key) if task is not None else None,
        "urlsExpireAt": links.window.expires_at_s * 1000,
    }


def _storyboard(board: Storyboard | None, links: ObjectLinks) -> dict[str, Any] | None:
    """The sprite and its WebVTT map, with the grid the page needs to show a tile."""
    if board is None:
        return None
    return {
        "spriteUrl": links.derived(board.sprite_key),
        "vttUrl": links.derived(board.vtt_key),
        "tiles": board.tiles,
        "columns": board.columns,
        "rows": board.rows,
        "tileWidthPx": board.tile_width_px,
        "tileHeightPx": board.tile_height_px,
        "intervalS": board.interval_s,
    }
