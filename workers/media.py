"""Media facts and plans: probing a video over HTTP and cutting thumbnails by input seeking.

Parsing and planning are pure functions; ``probe`` is the only I/O and reads the object through
a presigned URL with HTTP range requests, never downloading it. Thumbnails are cut in-process
(``workers.thumbnails``); ``thumbnail_command`` is the best command line, kept for the bench.
"""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg

from schema.errors import NotAVideo, ObjectMissing, StorageUnavailable, VideofleetError
from workers import supervise

logger = logging.getLogger(__name__)

# Demuxers that read still images: ffprobe reports a "video" stream for them.
_IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "gif", "bmp_pipe", "tiff_pipe")
_TRANSIENT_MARKERS = (
    "Connection refused",
    "Connection timed out",
    "Operation timed out",
    "Server returned 5",
    "Server returned 403",  # an expired presigned URL: a retry presigns a new one
    "Server returned 429",
    "Input/output error",
    "Network is unreachable",
)
_MISSING_MARKERS = ("Server returned 404",)
STDERR_TAIL_CHARS = 300


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """What validation learns about a video; stored as ``metadata.probe``."""

    duration_s: float
    width: int
    height: int
    display_width: int
    display_height: int
    rotation: int
    video_codec: str
    audio_codec: str | None
    frame_rate: float | None
    bit_rate: int | None
    size_bytes: int | None
    container: str

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON-ready form stored in the task's metadata."""
        return asdict(self)


def parse_probe(data: dict[str, Any], *, video_key: str) -> MediaInfo:
    """Turn ffprobe's JSON into ``MediaInfo``.

    Raises:
        NotAVideo: no video stream, a still image, or no positive duration.
    """
    fmt = data.get("format") or {}
    streams = data.get("streams") or []
    video = next(
        (
            s
            for s in streams
            if s.get("codec_type") == "video"
            and not (s.get("disposition") or {}).get("attached_pic")
        ),
        None,
    )
    container = str(fmt.get("format_name", ""))
    if video is None:
        raise NotAVideo("the file has no video stream", video_key=video_key)
    if container in _IMAGE_FORMATS:
        raise NotAVideo(
            f"the file is a still image ({container}), not a video", video_key=video_key
        )
    duration = _number(fmt.get("duration")) or _number(video.get("duration"))
    if not duration or duration <= 0:
        raise NotAVideo("the video has no duration", video_key=video_key)
    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    if width <= 0 or height <= 0:
        raise NotAVideo("the video stream has no picture size", video_key=video_key)
    rotation = _rotation(video)
    display_w, display_h = display_size(
        width, height, sar=video.get("sample_aspect_ratio"), rotation=rotation
    )
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    return MediaInfo(
        duration_s=round(duration, 3),
        width=width,
        height=height,
        display_width=display_w,
        display_height=display_h,
        rotation=rotation,
        video_codec=str(video.get("codec_name", "unknown")),
        audio_codec=str(audio["codec_name"]) if audio and audio.get("codec_name") else None,
        frame_rate=_rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate")),
        bit_rate=_int(fmt.get("bit_rate")) or _int(video.get("bit_rate")),
        size_bytes=_int(fmt.get("size")),
        container=container,
    )


def display_size(width: int, height: int, *, sar: str | None, rotation: int) -> tuple[int, int]:
    """The size a player shows: the stored size stretched by the sample aspect ratio, rotated."""
    ratio = _ratio(sar)
    display_w = round(width * ratio) if ratio else width
    if rotation % 180 == 90:
        return height, display_w
    return display_w, height


def plan_thumbnails(duration_s: float, count: int) -> list[float]:
    """Times of ``count`` evenly spaced thumbnails: the middle of each equal slice of the video.

    Middles avoid the first frame (often black) and never reach past the end.
    """
    if count < 1 or duration_s <= 0:
        return []
    return [round(duration_s * (i + 0.5) / count, 3) for i in range(count)]


def probe(url: str, *, video_key: str, timeout_s: float) -> MediaInfo:
    """Probe the object behind ``url`` with ffprobe (the command line ``ffmpeg.probe`` runs)."""
    args = ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", url]
    try:
        out = supervise.run(args, timeout_s=timeout_s)
    except ffmpeg.Error as exc:
        raise classify_failure(exc.stderr, url=url, video_key=video_key) from exc
    except subprocess.TimeoutExpired as exc:
        raise StorageUnavailable(
            f"ffprobe timed out after {timeout_s:.0f} s", video_key=video_key
        ) from exc
    return parse_probe(json.loads(out or b"{}"), video_key=video_key)


def thumbnail_command(url: str, times: list[float], *, width_px: int, out_dir: Path) -> list[str]:
    """The fastest command line for N thumbnails: one ffmpeg, one pre-seeked input per time.

    Each input is opened with ``-noaccurate_seek -ss T`` (the keyframe at or before T) and
    ``-fps_mode passthrough`` so no frame up to T is decoded; ``-threads 1 -probesize 32
    -analyzeduration 0`` skip work a single keyframe does not need. The workers use the
    in-process path (``workers.thumbnails``); this is what the bench compares it with.
    """
    outputs = []
    for index, at_s in enumerate(times):
        stream = (
            ffmpeg.input(
                url,
                ss=f"{at_s:.3f}",
                noaccurate_seek=None,
                threads=1,
                probesize=32,
                analyzeduration=0,
            )
            .video.filter("scale", "trunc(iw*sar/2)*2", "ih")
            .filter("setsar", 1)
            .filter("scale", width_px, -2)
        )
        outputs.append(
            stream.output(
                str(out_dir / f"{index:03d}.jpg"),
                vframes=1,
                fps_mode="passthrough",
                **{"q:v": 3},
            )
        )
    return list(
        ffmpeg.merge_outputs(*outputs)
        .global_args("-nostdin", "-loglevel", "error")
        .compile(cmd="ffmpeg", overwrite_output=True)
    )


def classify_failure(stderr: bytes | None, *, url: str, video_key: str) -> VideofleetError:
    """Decide from ffmpeg's stderr whether a failure was the network's or the file's.

    ffmpeg prefixes its messages with the input URL; the presigned URL (a credential, and long)
    is replaced by the object key before anything is stored or logged.
    """
    text = (stderr or b"").decode("utf-8", "replace").replace(url, video_key).strip()
    tail = " ".join(text.splitlines()[-2:])[-STDERR_TAIL_CHARS:]
    if any(marker in text for marker in _MISSING_MARKERS):
        return ObjectMissing(
            f"object {video_key} disappeared while being read", video_key=video_key
        )
    if any(marker in text for marker in _TRANSIENT_MARKERS):
        return StorageUnavailable(f"reading {video_key} failed: {tail}", video_key=video_key)
    reason = tail or "ffmpeg could not read it"
    return NotAVideo(f"not a readable video: {reason}", video_key=video_key, stderr_tail=tail)


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def _ratio(value: str | None) -> Fraction | None:
    if not value or ":" not in value:
        return None
    num, den = value.split(":", 1)
    try:
        ratio = Fraction(int(num), int(den))
    except (ValueError, ZeroDivisionError):
        return None
    return ratio if ratio > 0 else None


def _rate(value: str | None) -> float | None:
    if not value or "/" not in value:
        return None
    num, den = value.split("/", 1)
    try:
        return round(int(num) / int(den), 3) if int(den) else None
    except ValueError:
        return None


def _rotation(stream: dict[str, Any]) -> int:
    for side in stream.get("side_data_list") or []:
        if "rotation" in side:
            return int(_number(side["rotation"]) or 0) % 360
    return int(_number((stream.get("tags") or {}).get("rotate")) or 0) % 360
