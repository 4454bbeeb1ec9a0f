"""The workflow's three steps as plain functions: validate, thumbnails, update the database.

Each takes the process's ``Deps`` and a task id, reads what it needs from the row, and records
what it learnt before returning, so any step can run again (retry, redelivery, requeue) and
reach the same result. Celery appears only in ``workers.tasks``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from schema import derived_keys
from schema.errors import NotAVideo, PermanentError
from schema.metadata import MediaInfo, Reads, TaskMetadata, Thumbnails
from schema.settings import Settings
from schema.status import Step
from workers import records, storage
from workers.context import Deps
from workers.media import storyboard
from workers.media import thumbnails as thumbnail_capture
from workers.media.probe import plan_thumbnails, probe
from workers.media.rangereader import ReadLimits

logger = logging.getLogger(__name__)

StepFn = Callable[[Deps, str], bool]

# ffmpeg gets most of the step's soft time limit; the rest is for storage and the database.
FFMPEG_SHARE_OF_STEP = 0.8


def validate(deps: Deps, task_id: str) -> bool:
    """Probe the object and link the task to its video row; False if the task already ended.

    No HEAD: the probe's first range request tells the size and the version (``RangeSource``
    refuses another version than the task's with ``Superseded``).
    """
    started = time.monotonic()
    row = records.begin_step(deps.engine, task_id, Step.VALIDATE)
    if row is None:
        return False
    deps.changed(row.video_key)
    settings = deps.settings
    bucket = row.bucket or settings.s3_bucket
    url = storage.presigned_get(deps.s3, bucket, row.video_key, expires_s=settings.presign_expiry_s)
    probe_started = time.monotonic()
    source = _read_limits(settings).source(
        url,
        video_key=row.video_key,
        pool=storage.http_pool(),
        deadline=started + _ffmpeg_budget_s(deps),
        etag=row.etag,
    )
    size = source.total_size()
    if size == 0:
        raise NotAVideo("the object is empty (0 bytes)", video_key=row.video_key)
    info = probe(
        source.cursor(),
        video_key=row.video_key,
        size_bytes=size,
        max_pixels=settings.max_video_pixels,
    )
    probe_s = _since(probe_started)
    records.save_validated(
        deps.engine,
        row,
        TaskMetadata(
            probe=info,
            timings_s={Step.VALIDATE.value: _since(started)},
            media_s={"probe": probe_s},
            reads=Reads(probe_requests=source.requests, probe_bytes=source.bytes_read),
        ),
        size_bytes=size,
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


def _read_limits(settings: Settings) -> ReadLimits:
    return ReadLimits(
        block_bytes=settings.range_read_block_bytes,
        max_request_bytes=settings.range_read_max_request_bytes,
        cache_bytes=settings.range_read_cache_bytes,
        timeout_s=settings.s3_read_timeout_s,
        max_attempts=settings.s3_max_attempts,
    )


def thumbnails(deps: Deps, task_id: str) -> bool:
    """Cut thumbnails, a poster and a storyboard by keyframe seeks over bounded range reads."""
    started = time.monotonic()
    row = records.begin_step(deps.engine, task_id, Step.THUMBNAILS)
    if row is None:
        return False
    deps.changed(row.video_key)
    probe = row.metadata.probe
    if probe is None or probe.duration_s <= 0:
        raise PermanentError(f"Task {task_id}: no probe results; run it again from the start")
    duration = probe.duration_s
    settings = deps.settings
    bucket = row.bucket or settings.s3_bucket
    times = plan_thumbnails(duration, settings.thumbnail_count)
    board = _storyboard_plan(settings, duration, probe) if settings.storyboard_enabled else None
    url = storage.presigned_get(deps.s3, bucket, row.video_key, expires_s=settings.presign_expiry_s)
    capture_started = time.monotonic()
    shot = thumbnail_capture.capture(
        url,
        times,
        video_key=row.video_key,
        width_px=settings.thumbnail_width_px,
        jpeg_quality=settings.thumbnail_jpeg_quality,
        search_attempts=settings.thumbnail_search_attempts,
        board=board,
        limits=_read_limits(settings),
        pool=storage.http_pool(),
        deadline=started + _ffmpeg_budget_s(deps),
        decoders=settings.thumbnail_decoders,
        max_pixels=settings.max_video_pixels,
        etag=row.etag,
    )
    capture_s = _since(capture_started)
    prefix = settings.thumbnails_prefix
    uploads = {
        derived_keys.thumbnail_key(prefix, row.video_key, index, thumb.jpeg): (
            thumb.jpeg,
            storage.THUMBNAIL_CONTENT_TYPE,
        )
        for index, thumb in enumerate(shot.shots)
    }
    keys = list(uploads)
    patch = TaskMetadata(
        thumbnails=Thumbnails(
            keys=keys,
            times_s=times,
            frame_times_s=[t.frame_s for t in shot.shots],
            width_px=settings.thumbnail_width_px,
            poster_key=keys[shot.poster_index],
            blank=[t.blank for t in shot.shots],
        ),
        reads=Reads(
            requests=shot.requests,
            bytes=shot.bytes_read,
            object_bytes=shot.object_bytes,
            decoded_frames=shot.decoded,
        ),
    )
    if board is not None and shot.sprite_jpeg is not None and shot.vtt is not None:
        sprite_key = derived_keys.storyboard_key(
            prefix, row.video_key, storyboard.SPRITE_NAME, shot.sprite_jpeg
        )
        # the map names the sprite by its versioned key, so players find it beside the map
        vtt = storyboard.vtt_text(board, sprite_url=sprite_key.rpartition("/")[2]).encode()
        vtt_key = derived_keys.storyboard_key(prefix, row.video_key, storyboard.VTT_NAME, vtt)
        uploads[sprite_key] = (shot.sprite_jpeg, storage.THUMBNAIL_CONTENT_TYPE)
        uploads[vtt_key] = (vtt, storyboard.VTT_CONTENT_TYPE)
        patch.storyboard = board.summary(sprite_key=sprite_key, vtt_key=vtt_key)
    storage.upload_many(deps.s3, bucket, uploads)
    patch.timings_s = {Step.THUMBNAILS.value: _since(started)}
    patch.media_s = {"capture": capture_s}
    records.save_step(deps.engine, task_id, Step.THUMBNAILS, patch)
    return True


def _storyboard_plan(
    settings: Settings, duration_s: float, probe: MediaInfo
) -> storyboard.StoryboardPlan:
    display_w, display_h = probe.display_size
    tile_w = settings.storyboard_tile_width_px // 2 * 2
    tile_h = max(2, round(tile_w * display_h / display_w / 2) * 2)
    return storyboard.plan_storyboard(
        duration_s,
        min_interval_s=settings.storyboard_min_interval_s,
        max_tiles=settings.storyboard_max_tiles,
        columns=settings.storyboard_columns,
        tile_width=tile_w,
        tile_height=tile_h,
    )


def update(deps: Deps, task_id: str) -> bool:
    """Complete the task and mark its video ready with the first thumbnail as its poster.

    One transaction, no separate start: the step only writes, so a crash before it commits
    leaves the row as the thumbnails step saved it, and recovery resumes here.
    """
    started = time.monotonic()
    row = records.complete(deps.engine, task_id, started=started)
    if row is None:
        return False
    deps.changed(row.video_key)
    logger.info("Task %s: completed in %.2f s", task_id, row.metadata.timings_s["total"])
    return True


def _ffmpeg_budget_s(deps: Deps) -> float:
    return deps.settings.step_soft_time_limit_s * FFMPEG_SHARE_OF_STEP


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)
