"""The workflow's three steps as plain functions: validate, thumbnails, update the database.

Each takes the process's ``Deps`` and a task id, reads what it needs from the row, and records
what it learnt before returning, so any step can run again (retry, redelivery, requeue) and
reach the same result. Celery appears only in ``workers.tasks``.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from schema.errors import NotAVideo, PermanentError
from schema.status import Step
from workers import media, records, storage
from workers.context import Deps

logger = logging.getLogger(__name__)

StepFn = Callable[[Deps, str], bool]

# ffmpeg gets most of the step's soft time limit; the rest is for storage and the database.
FFMPEG_SHARE_OF_STEP = 0.8


def validate(deps: Deps, task_id: str) -> bool:
    """Probe the object and link the task to its video row; False if the task already ended."""
    started = time.monotonic()
    row = records.begin_step(deps.engine, task_id, Step.VALIDATE)
    if row is None:
        return False
    bucket = row.bucket or deps.settings.s3_bucket
    size = storage.object_size(deps.s3, bucket, row.video_key)
    if size == 0:
        raise NotAVideo("the object is empty (0 bytes)", video_key=row.video_key)
    url = storage.presigned_get(
        deps.s3, bucket, row.video_key, expires_s=deps.settings.presign_expiry_s
    )
    info = media.probe(url, video_key=row.video_key, timeout_s=_ffmpeg_budget_s(deps))
    records.attach_video(deps.engine, row, size_bytes=size)
    records.save_step(
        deps.engine,
        task_id,
        Step.VALIDATE,
        {"probe": info.as_dict(), "timings_s": {Step.VALIDATE.value: _since(started)}},
    )
    logger.info(
        "Task %s: %s is %s %dx%d, %.1f s",
        task_id,
        row.video_key,
        info.video_codec,
        info.display_width,
        info.display_height,
        info.duration_s,
    )
    return True


def thumbnails(deps: Deps, task_id: str) -> bool:
    """Cut evenly spaced thumbnails by seeking and store them under deterministic keys."""
    started = time.monotonic()
    row = records.begin_step(deps.engine, task_id, Step.THUMBNAILS)
    if row is None:
        return False
    duration = float((row.metadata.get("probe") or {}).get("duration_s") or 0)
    if duration <= 0:
        raise PermanentError(f"Task {task_id}: no probe results; run it again from the start")
    settings = deps.settings
    bucket = row.bucket or settings.s3_bucket
    times = media.plan_thumbnails(duration, settings.thumbnail_count)
    url = storage.presigned_get(deps.s3, bucket, row.video_key, expires_s=settings.presign_expiry_s)
    keys = []
    with tempfile.TemporaryDirectory(prefix="videofleet-") as tmp:
        paths = media.make_thumbnails(
            url,
            times,
            video_key=row.video_key,
            width_px=settings.thumbnail_width_px,
            out_dir=Path(tmp),
            timeout_s=_ffmpeg_budget_s(deps),
        )
        for index, path in enumerate(paths):
            key = storage.thumbnail_key(settings.thumbnails_prefix, row.video_key, index)
            storage.upload_file(
                deps.s3, bucket, key, path, content_type=storage.THUMBNAIL_CONTENT_TYPE
            )
            keys.append(key)
    records.save_step(
        deps.engine,
        task_id,
        Step.THUMBNAILS,
        {
            "thumbnails": {"keys": keys, "times_s": times, "width_px": settings.thumbnail_width_px},
            "timings_s": {Step.THUMBNAILS.value: _since(started)},
        },
    )
    return True


def update(deps: Deps, task_id: str) -> bool:
    """Complete the task and mark its video ready with the first thumbnail as its poster."""
    started = time.monotonic()
    row = records.begin_step(deps.engine, task_id, Step.UPDATE)
    if row is None:
        return False
    keys = (row.metadata.get("thumbnails") or {}).get("keys") or []
    timings = dict(row.metadata.get("timings_s") or {})
    timings[Step.UPDATE.value] = _since(started)
    timings["total"] = round(sum(v for k, v in timings.items() if k != "total"), 3)
    records.complete(
        deps.engine, task_id, patch={"timings_s": timings}, thumbnail_url=keys[0] if keys else None
    )
    logger.info("Task %s: completed in %.2f s", task_id, timings["total"])
    return True


def _ffmpeg_budget_s(deps: Deps) -> float:
    return deps.settings.step_soft_time_limit_s * FFMPEG_SHARE_OF_STEP


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)
