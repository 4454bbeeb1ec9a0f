"""A video's status for its owner: the row, its latest task's facts, short-lived GET URLs.

The page polls this while the fleet works; thumbnails and the video are private objects, so
their URLs are presigned GETs that expire after ``STATUS_URL_EXPIRY_S``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from producer.uploads import UploadNotFound
from schema.lifecycle import load_metadata, now_ms
from schema.settings import Settings
from schema.tables import tasks, videos

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def describe(
    video_id: str, *, owner: str, settings: Settings, engine: Engine, s3: S3Client
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
    expires_s = settings.status_url_expiry_s
    bucket = (task.bucket if task is not None else None) or settings.s3_bucket

    def get_url(key: str) -> str:
        return s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_s
        )

    metadata = load_metadata(task.metadata) if task is not None else {}
    thumbs = metadata.get("thumbnails") or {}
    times = list(thumbs.get("times_s") or [])
    thumbnails = [
        {"key": key, "url": get_url(key), "atS": times[i] if i < len(times) else None}
        for i, key in enumerate(thumbs.get("keys") or [])
    ]
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
        "metadata": {k: metadata[k] for k in ("probe", "timings_s") if k in metadata},
        "thumbnails": thumbnails,
        "videoUrl": get_url(video.r2_key) if task is not None else None,
        "urlsExpireAt": now_ms() + expires_s * 1000,
    }
