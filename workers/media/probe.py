"""Media facts and plans: probing a video in-process and planning where thumbnails are cut.

``probe`` reads the object through the same bounded, retrying range reader as the thumbnails
(``workers.media.rangereader``), opened by ``workers.media.containers.open_container``: only
allow-listed containers, no nested opens, a pixel limit before any frame is decoded. Planning is
pure.
"""

from __future__ import annotations

import io
import logging
from fractions import Fraction

import av
import av.error
from av.video.stream import VideoStream

from schema.errors import NotAVideo, VideoTooLarge
from schema.metadata import MediaInfo
from workers.media import containers, formats

logger = logging.getLogger(__name__)


def probe(
    reader: io.RawIOBase, *, video_key: str, size_bytes: int | None, max_pixels: int
) -> MediaInfo:
    """Learn what the object is, reading it only through ``reader``.

    The first frame is decoded: it carries the display rotation and proves the stream decodes.

    Raises:
        NotAVideo: no allowed container, no video stream, no size or duration, undecodable.
        VideoTooLarge: frames above ``max_pixels``.
        ObjectMissing / StorageUnavailable: from the reader (never a fact about the file).
    """
    container = containers.open_container(reader, video_key=video_key, max_pixels=max_pixels)
    try:
        return describe(
            container, video_key=video_key, size_bytes=size_bytes, max_pixels=max_pixels
        )
    finally:
        container.close()


def describe(
    container: av.container.InputContainer,
    *,
    video_key: str,
    size_bytes: int | None,
    max_pixels: int,
) -> MediaInfo:
    """``MediaInfo`` of an opened container (see ``probe``)."""
    video = _video_stream(container)
    if video is None:
        raise NotAVideo("the file has no video stream", video_key=video_key)
    width, height = video.codec_context.width, video.codec_context.height
    if width <= 0 or height <= 0:
        raise NotAVideo("the video stream has no picture size", video_key=video_key)
    if width * height > max_pixels:
        raise VideoTooLarge(video_key=video_key, width=width, height=height, max_pixels=max_pixels)
    duration = containers.playable_duration_s(container)
    if duration <= 0:
        raise NotAVideo("the video has no duration", video_key=video_key)
    rotation = _first_frame_rotation(container, video, video_key=video_key)
    display_w, display_h = display_size(
        width, height, sar=containers.sample_aspect(video), rotation=rotation
    )
    audio = next(iter(container.streams.audio), None)
    rate = video.average_rate or video.guessed_rate
    return MediaInfo(
        duration_s=round(duration, 3),
        width=width,
        height=height,
        display_width=display_w,
        display_height=display_h,
        rotation=rotation,
        video_codec=video.codec_context.name,
        audio_codec=audio.codec_context.name if audio is not None else None,
        frame_rate=round(float(rate), 3) if rate else None,
        bit_rate=container.bit_rate or video.codec_context.bit_rate or None,
        size_bytes=size_bytes,
        container=_container_name(container),
    )


def _container_name(container: av.container.InputContainer) -> str:
    """ffmpeg's full demuxer name (``mov,mp4,m4a,3gp,3g2,mj2``), as ffprobe reports it."""
    kind = formats.named(container.format.name)
    return kind.names if kind is not None else container.format.name


def _video_stream(container: av.container.InputContainer) -> VideoStream | None:
    """The first video stream that is a moving picture, not cover art."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def _first_frame_rotation(
    container: av.container.InputContainer, video: VideoStream, *, video_key: str
) -> int:
    """The display rotation (degrees counterclockwise, 0-359) the first frame carries."""
    video.thread_count = 1
    try:
        for frame in container.decode(video):
            return int(frame.rotation or 0) % 360
    except av.error.FFmpegError as exc:
        reason = exc.strerror or "undecodable"
        raise NotAVideo(f"not a readable video: {reason}", video_key=video_key) from exc
    raise NotAVideo("not a readable video: no frame could be decoded", video_key=video_key)


def display_size(width: int, height: int, *, sar: Fraction, rotation: int) -> tuple[int, int]:
    """The size a player shows: the stored size stretched by the sample aspect ratio, rotated."""
    display_w = round(width * sar) if sar > 0 else width
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
