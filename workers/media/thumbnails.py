"""The thumbnail fast path: N thumbnails, a poster and a storyboard from one bounded read.

Thumbnails and storyboard tiles come from one plan (``plan_pictures``): every time either
needs, in time order. The object is opened once through a ``RangeReader`` (bounded range GETs
on a presigned URL) and seeked once per time; every keyframe decoded is kept
(``KeyframePictures``), so a thumbnail that falls on a tile's keyframe, or a blank thumbnail's
search that wanders onto one, reuses the decoded picture: no keyframe is decoded twice, and the
range cache means none is fetched twice. Nothing here touches the database or uploads:
``workers.steps`` stores what ``capture`` returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

import urllib3

from workers.media import storyboard
from workers.media.frames import FrameSource, open_source
from workers.media.pictures import KeyframePictures, Picture, encode_jpeg
from workers.media.rangereader import ReadLimits

logger = logging.getLogger(__name__)

# A keyframe up to this share of a slice before a thumbnail's time stands for it; further back
# it would repeat the previous thumbnail, so the frames up to the time are decoded instead.
KEYFRAME_REACH = 0.75


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
    """What one pass over the object produced, and what it cost.

    ``decoded``: pictures made; ``keyframes``: distinct keyframes decoded;
    ``keyframe_decodes``: keyframe packets handed to a decoder on any path (equal to
    ``keyframes`` when none was decoded twice).
    """

    shots: list[Shot]
    poster_index: int
    sprite_jpeg: bytes | None
    vtt: str | None
    plan: storyboard.StoryboardPlan | None
    requests: int = 0
    bytes_read: int = 0
    object_bytes: int = 0
    decoded: int = 0
    keyframes: int = 0
    keyframe_decodes: int = 0


@dataclass(slots=True)
class _Decoded:
    thumbs: dict[int, Picture]
    tiles: dict[int, Picture]
    decoded: int
    keyframe_decodes: Counter[int | None]


class Want(NamedTuple):
    """One picture the plan needs: at what time, for a thumbnail or a tile, which one."""

    at_s: float
    kind: int  # THUMB or TILE
    nth: int


THUMB, TILE = 0, 1


def plan_pictures(times: list[float], board: storyboard.StoryboardPlan | None) -> list[Want]:
    """Every picture thumbnails and storyboard need, in time order: one plan for one pass.

    In time order the demuxer mostly moves forward, and a thumbnail and a tile on the same
    keyframe come one after the other.
    """
    board_times = board.times if board is not None else []
    return sorted(
        [Want(t, THUMB, i) for i, t in enumerate(times)]
        + [Want(t, TILE, i) for i, t in enumerate(board_times)]
    )


def _decode_run(
    frames: FrameSource,
    work: list[Want],
    *,
    count: int,
    board: storyboard.StoryboardPlan | None,
    attempts: int,
) -> _Decoded:
    """Decode one run of the plan in order with one container."""
    slice_s = frames.duration_s / max(count, 1) if frames.duration_s else 1.0
    result = _Decoded({}, {}, 0, Counter())
    for at_s, kind, index in work:
        if kind == THUMB:
            result.thumbs[index] = frames.representative(
                at_s,
                step_s=slice_s / 4,
                attempts=attempts,
                max_distance_s=slice_s * KEYFRAME_REACH,
            )
        else:
            reach = board.interval_s if board is not None else slice_s
            result.tiles[index] = frames.picture_at(
                at_s, max_distance_s=reach
            ) or frames.representative(at_s, step_s=slice_s / 4, attempts=1, max_distance_s=reach)
    result.decoded = frames.decoded
    result.keyframe_decodes = frames.keyframe_decodes
    return result


def choose_poster(shots: list[Shot]) -> int:
    """The index of the poster: the first non-blank thumbnail, else the most detailed one.

    Thumbnails already avoid blank frames where the video allows, so this is normally the first
    one (early, as players expect); a video that is dark throughout gets its best-lit picture.
    """
    if not shots:
        raise ValueError("no thumbnails to choose from")
    for index, shot in enumerate(shots):
        if not shot.blank:
            return index
    return max(range(len(shots)), key=lambda i: (shots[i].contrast, shots[i].mean_luma, -i))


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
    max_pixels: int,
    deadline: float | None = None,
    decoders: int = 1,
    etag: str | None = None,
) -> Capture:
    """Seek to every thumbnail and storyboard time, reading the object once.

    The times are split into ``decoders`` contiguous runs, each decoded by its own container in
    its own thread over one shared range cache: requests to the store overlap (a round trip to
    R2 costs tens of milliseconds) while each run still moves forward through the file. One
    decoder is the default: on a busy 2-core worker next to the store it is as fast and cheaper. The
    first container reads the index; the others wait for it and find it cached.

    Raises:
        NotAVideo: the object cannot be decoded.
        ObjectMissing / StorageUnavailable / Superseded: from the reader (``etag`` is the
            version to read).
    """
    source = limits.source(url, video_key=video_key, pool=pool, deadline=deadline, etag=etag)
    started = time.monotonic()
    work = plan_pictures(times, board)
    runs = max(1, min(decoders, len(work)))
    chunks = [work[k * len(work) // runs : (k + 1) * len(work) // runs] for k in range(runs)]
    index_ready = threading.Event()
    pictures = KeyframePictures()

    def decode(chunk: list[Want], first: bool) -> _Decoded:
        if not first:
            index_ready.wait(limits.timeout_s)
        try:
            with open_source(
                source.cursor(),
                video_key=video_key,
                width_px=width_px,
                max_pixels=max_pixels,
                pictures=pictures,
            ) as frames:
                index_ready.set()
                return _decode_run(
                    frames, chunk, count=len(times), board=board, attempts=search_attempts
                )
        finally:
            index_ready.set()

    if runs == 1:
        decoded_runs = [decode(chunks[0], True)]
    else:
        with ThreadPoolExecutor(max_workers=runs, thread_name_prefix="capture") as executor:
            futures = [executor.submit(decode, chunk, k == 0) for k, chunk in enumerate(chunks)]
            try:
                decoded_runs = [future.result() for future in futures]
            except BaseException:
                # A failure or Celery's soft time limit: stop the other runs at their next read.
                source.cancel()
                raise
    thumbs = {i: p for run in decoded_runs for i, p in run.thumbs.items()}
    tiles = {i: p for run in decoded_runs for i, p in run.tiles.items()}
    decoded = sum(run.decoded for run in decoded_runs)
    keyframe_decodes = sum((run.keyframe_decodes for run in decoded_runs), Counter[int | None]())
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
        "Video %s: %d thumbnails, %d tiles from %d decoded frames (%d keyframes), %d requests,"
        " %d bytes, %.2f s",
        video_key,
        len(shots),
        len(tiles),
        decoded,
        len(keyframe_decodes),
        source.requests,
        source.bytes_read,
        time.monotonic() - started,
    )
    return Capture(
        shots=shots,
        poster_index=choose_poster(shots) if shots else 0,
        sprite_jpeg=sprite_jpeg,
        vtt=vtt,
        plan=board,
        requests=source.requests,
        bytes_read=source.bytes_read,
        object_bytes=source.size or 0,
        decoded=decoded,
        keyframes=len(keyframe_decodes),
        keyframe_decodes=keyframe_decodes.total(),
    )
