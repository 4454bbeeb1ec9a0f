"""The thumbnail fast path: N thumbnails, a poster and a storyboard from one bounded read.

The object is opened once through a ``RangeReader`` (bounded range GETs on a presigned URL)
and seeked once per time, in time order, thumbnails and storyboard tiles together, so a
keyframe shared by both is fetched and decoded once. Nothing here touches the database or
uploads: ``workers.steps`` stores what ``capture`` returns.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import urllib3

from workers import storyboard
from workers.frames import Picture, encode_jpeg, open_source
from workers.rangereader import RangeReader

logger = logging.getLogger(__name__)

# A keyframe up to this share of a slice before a thumbnail's time stands for it; further back
# it would repeat the previous thumbnail, so the frames up to the time are decoded instead.
KEYFRAME_REACH = 0.75


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """How the reader may fetch: request sizes, cache, timeouts."""

    block_bytes: int
    max_request_bytes: int
    cache_bytes: int
    timeout_s: float


@dataclass(frozen=True, slots=True)
class Shot:
    """One thumbnail: the JPEG and where in the video it came from."""

    at_s: float
    frame_s: float
    jpeg: bytes
    mean_luma: float
    contrast: float
    blank: bool
    method: str


@dataclass(slots=True)
class Capture:
    """What one pass over the object produced, and what it cost."""

    shots: list[Shot]
    poster_index: int
    sprite_jpeg: bytes | None
    vtt: str | None
    plan: storyboard.StoryboardPlan | None
    requests: int = 0
    bytes_read: int = 0
    object_bytes: int = 0
    decoded: int = 0


def choose_poster(shots: list[Shot]) -> int:
    """The index of the thumbnail that best stands for the video: the most detailed non-blank."""
    if not shots:
        raise ValueError("no thumbnails to choose from")
    candidates = [i for i, shot in enumerate(shots) if not shot.blank] or list(range(len(shots)))
    return max(candidates, key=lambda i: (shots[i].contrast, -i))


def capture(
    url: str,
    times: list[float],
    *,
    video_key: str,
    width_px: int,
    jpeg_quality: int,
    search_attempts: int,
    board: storyboard.StoryboardPlan | None,
    limits: ReadLimits,
    pool: urllib3.PoolManager,
    deadline: float | None = None,
) -> Capture:
    """Seek to every thumbnail and storyboard time in one opened container.

    Raises:
        NotAVideo: the object cannot be decoded.
        ObjectMissing / StorageUnavailable: from the reader.
    """
    reader = RangeReader(
        url,
        video_key=video_key,
        pool=pool,
        block_bytes=limits.block_bytes,
        max_request_bytes=limits.max_request_bytes,
        cache_bytes=limits.cache_bytes,
        timeout_s=limits.timeout_s,
        deadline=deadline,
    )
    started = time.monotonic()
    board_times = board.times if board is not None else []
    # (time, kind, index) in time order: the demuxer mostly moves forward.
    work = sorted(
        [(t, 0, i) for i, t in enumerate(times)] + [(t, 1, i) for i, t in enumerate(board_times)]
    )
    thumbs: dict[int, Picture] = {}
    tiles: dict[int, Picture] = {}
    slice_s = 0.0
    with open_source(reader, video_key=video_key, width_px=width_px) as source:
        duration = source.duration_s or (max(times, default=0.0) * 2)
        slice_s = duration / max(len(times), 1)
        for at_s, kind, index in work:
            if kind == 0:
                thumbs[index] = source.representative(
                    at_s,
                    step_s=slice_s / 4,
                    attempts=search_attempts,
                    max_distance_s=slice_s * KEYFRAME_REACH,
                )
            else:
                assert board is not None
                tiles[index] = source.picture_at(
                    at_s, max_distance_s=board.interval_s
                ) or source.representative(
                    at_s, step_s=slice_s / 4, attempts=1, max_distance_s=board.interval_s
                )
        decoded = source.decoded
    shots = [
        Shot(
            at_s=p.at_s,
            frame_s=p.frame_s,
            jpeg=encode_jpeg(p.frame, quality=jpeg_quality),
            mean_luma=round(p.mean_luma, 1),
            contrast=round(p.contrast, 1),
            blank=p.blank,
            method=p.method,
        )
        for p in (thumbs[i] for i in range(len(times)))
    ]
    sprite_jpeg = vtt = None
    if board is not None and board.tiles:
        sprite = storyboard.compose_sprite(board, [tiles[i].frame for i in range(len(board.tiles))])
        sprite_jpeg = encode_jpeg(sprite, quality=jpeg_quality + 2)
        vtt = storyboard.vtt_text(board, sprite_url=storyboard.SPRITE_NAME)
    logger.info(
        "Video %s: %d thumbnails, %d tiles from %d decoded frames, %d requests, %d bytes, %.2f s",
        video_key,
        len(shots),
        len(tiles),
        decoded,
        reader.requests,
        reader.bytes_read,
        time.monotonic() - started,
    )
    return Capture(
        shots=shots,
        poster_index=choose_poster(shots) if shots else 0,
        sprite_jpeg=sprite_jpeg,
        vtt=vtt,
        plan=board,
        requests=reader.requests,
        bytes_read=reader.bytes_read,
        object_bytes=reader.size if reader.requests else 0,
        decoded=decoded,
    )
