"""Opening an upload as a PyAV container: only allowed formats, only the object's own bytes.

The demuxer is forced to the container ``workers.media.formats`` recognised from the magic
bytes, every attempt to open another resource is refused, and ffmpeg's log is captured while it
opens, because the decoders' pixel limit is reported nowhere else.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction

import av
import av.error
import av.logging
from av.video.stream import VideoStream

from schema.errors import NotAVideo, VideoTooLarge
from workers.media import formats
from workers.media.rangereader import RangeReader

# The demuxer's own buffer. Small, so that a keyframe larger than it is read directly: one
# request of exactly its size, not a buffer's worth past its end.
IO_BUFFER_BYTES = 16 * 1024


def open_container(
    reader: io.RawIOBase, *, video_key: str, max_pixels: int
) -> av.container.InputContainer:
    """``reader`` opened as the allowed container its first bytes say it is.

    The probe and every frame source open uploads here, so no demuxer ever sees a format the
    allow-list does not name or reads a byte from anywhere but ``reader``.

    Raises:
        NotAVideo: empty, not an allowed container, or not readable as the one it claims.
        VideoTooLarge: a decoder refused its frames for ``max_pixels``.
        ObjectMissing / StorageUnavailable: from the reader.
    """
    head = reader.read(formats.HEAD_BYTES) or b""
    reader.seek(0)
    if not head:
        raise NotAVideo("the object is empty", video_key=video_key)
    kind = formats.sniff(head)
    if kind is None:
        raise NotAVideo(
            "not a video: the content is no container this fleet reads "
            f"({', '.join(c.label for c in formats.ALLOWED)})",
            video_key=video_key,
        )
    if kind is formats.MP4 and isinstance(reader, RangeReader):
        _read_index_ahead(reader, head)
    nested: list[str] = []
    with _ffmpeg_errors() as logs:
        try:
            container = av.open(
                reader,
                mode="r",
                format=kind.demuxer,
                buffer_size=IO_BUFFER_BYTES,
                options={"max_pixels": str(max_pixels)},
                io_open=functools.partial(_refuse_nested_open, nested),
            )
        except (av.error.FFmpegError, _NestedOpenRefused) as exc:
            raise _open_failure(exc, kind, logs, nested, video_key, max_pixels) from exc
    if nested:
        container.close()
        raise _nested_failure(kind, video_key)
    too_large = _pixel_limit_hit(logs)
    if too_large is not None:
        container.close()
        width, height = too_large
        raise VideoTooLarge(video_key=video_key, width=width, height=height, max_pixels=max_pixels)
    return container


def _read_index_ahead(reader: RangeReader, head: bytes) -> None:
    """Let the reader fetch an MP4's index in one request instead of a doubling run.

    At the front, the ``moov`` box and a block after it (the first packets the demuxer reads
    next); at the end, the rest of the file, when that is no more than one request.
    """
    span = formats.mp4_index_span(head, size=reader.size)
    if span is None:
        return
    start, end = span
    if reader.size is not None and end < reader.size:
        end = min(end + reader.block_bytes, reader.size)
    if end - start <= reader.max_request_bytes:
        reader.read_ahead(start, end)


class _NestedOpenRefused(OSError):
    """Raised into ffmpeg when a demuxer tries to open anything but the object itself."""


def _refuse_nested_open(attempts: list[str], url: str, flags: int, options: object) -> None:
    # Only the fact is kept: the URL is the uploader's text and may name internal hosts.
    attempts.append(url)
    raise _NestedOpenRefused("nested open refused")


def _open_failure(
    exc: Exception,
    kind: formats.Container,
    logs: list[tuple[int, str, str]],
    nested: list[str],
    video_key: str,
    max_pixels: int,
) -> NotAVideo:
    too_large = _pixel_limit_hit(logs)
    if too_large is not None:
        width, height = too_large
        return VideoTooLarge(video_key=video_key, width=width, height=height, max_pixels=max_pixels)
    if nested:
        return _nested_failure(kind, video_key)
    # ffmpeg's own last error line says why ("moov atom not found"); its error code only says
    # "Invalid data found when processing input".
    said = [" ".join(message.split()) for _level, _name, message in logs if message.strip()]
    code = exc.strerror if isinstance(exc, av.error.FFmpegError) and exc.strerror else None
    reason = said[-1] if said else code or "unreadable"
    return NotAVideo(f"not a readable {kind.label} video: {reason}", video_key=video_key)


def _nested_failure(kind: formats.Container, video_key: str) -> NotAVideo:
    return NotAVideo(
        f"not a video: the {kind.label} file refers to other files or URLs", video_key=video_key
    )


_PIXEL_LIMIT_RE = re.compile(r"Picture size (\d+)x(\d+) exceeds specified max pixel count")


def _pixel_limit_hit(logs: list[tuple[int, str, str]]) -> tuple[int, int] | None:
    """The frame size a decoder refused for ``max_pixels`` (ffmpeg says so only in its log)."""
    for _level, _name, message in logs:
        match = _PIXEL_LIMIT_RE.search(message)
        if match:
            return int(match[1]), int(match[2])
    return None


# PyAV holds back a message equal to the one before and emits it (as "repeated") when the next
# different one arrives, whichever open that is: a giant frame's pixel-limit error would land in
# the next container's capture and refuse an innocent file as too large. Every message is
# delivered when it is logged instead (logging is on only while a container opens).
av.logging.set_skip_repeated(False)


@contextmanager
def _ffmpeg_errors() -> Iterator[list[tuple[int, str, str]]]:
    """Collect ffmpeg's error lines from this thread: the pixel limit is reported nowhere else.

    PyAV forwards no ffmpeg log by default; it is switched on only while a container opens, so
    decoders' chatter about damaged frames does not flood the worker's log.
    """
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture(local=True) as logs:
            yield logs
    finally:
        av.logging.set_level(previous)


def sample_aspect(stream: VideoStream) -> Fraction:
    """The one rule for a picture's shape: the container's sample aspect ratio, else the codec's.

    It is ffmpeg's own guess (``av_guess_sample_aspect_ratio``), what players show; the probe,
    the thumbnails and the storyboard all use it, so their display sizes agree.
    """
    for ratio in (stream.sample_aspect_ratio, stream.codec_context.sample_aspect_ratio):
        if ratio:
            return Fraction(ratio)
    return Fraction(1)


def playable_duration_s(container: av.container.InputContainer) -> float:
    """How long the video really plays: what its streams say, else what the container says.

    A container header can claim anything (an MP4 whose ``mvhd`` says 49.7 days over a 3-second
    track); the streams' own durations are measured from their samples, so they win.
    """
    streams = [*container.streams.video, *container.streams.audio]
    measured = [
        float(s.duration * s.time_base) for s in streams if s.duration and s.time_base is not None
    ]
    if measured:
        return max(measured)
    return container.duration / av.time_base if container.duration else 0.0
