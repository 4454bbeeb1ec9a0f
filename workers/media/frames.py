"""Pictures at chosen times, decoded in-process by keyframe seeks over a bounded reader.

One container is opened once and seeked once per time: the demuxer jumps through the index to
the keyframe at or before the time and only that packet is decoded (then the decoder is
drained), so a thumbnail costs one keyframe's bytes and one frame's decode whatever the video's
length. Keyframe-only decoding does not depend on ``skip_frame`` (which VP9 ignores). When the
keyframe is black or flat, nearby keyframes are tried; when a keyframe seek yields nothing, an
accurate seek decodes forward to the time. Every keyframe picture is kept for the pass
(``KeyframePictures``), so none is decoded twice, and before each seek the reader is told how
many bytes the keyframe takes, so it is fetched in one request of about its size.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import itertools
import logging
import math
import operator
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction

import av
import av.error
import av.logging
from av.stream import Discard
from av.video.frame import VideoFrame
from av.video.reformatter import VideoReformatter
from av.video.stream import VideoStream

from schema.errors import NotAVideo, VideoTooLarge
from workers.media import formats
from workers.media.rangereader import RangeReader

logger = logging.getLogger(__name__)

# A picture darker than this mean luma (0-255) or flatter than this standard deviation is
# "blank": a fade, a black leader, a title card's empty background.
BLANK_MEAN_LUMA = 28.0
BLANK_MIN_CONTRAST = 6.0
# The demuxer's own buffer. Small, so that a keyframe larger than it is read directly: one
# request of exactly its size, not a buffer's worth past its end.
IO_BUFFER_BYTES = 16 * 1024
STATS_WIDTH_PX = 64
# How far before a time an accurate decode starts, tried in turn when a seek lands past the
# time; None is the first frame.
SEEK_BACKOFF_S: tuple[float | None, ...] = (0.0, 1.0, 4.0, 16.0, None)
# Demuxers whose seeks jump straight to an index entry (MP4's sample table, Matroska's cues):
# the entry tells where the keyframe is before any byte is read.
_SEEKS_BY_INDEX = frozenset({"mov", "matroska"})
# The next keyframe may be larger than those seen: this share more is fetched at once.
KEYFRAME_SPAN_MARGIN = 0.25
# A keyframe this far after its time still counts as "at" it (timestamps are rounded to 1 ms).
_AT_TOLERANCE_S = 0.001
# PyAV reports the display matrix angle counterclockwise (libavutil's convention), as ffmpeg's
# autorotate reads it: 90 means turn the picture a quarter counterclockwise.
_TRANSPOSE = {90: ("transpose=cclock",), 180: ("hflip", "vflip"), 270: ("transpose=clock",)}


@dataclass(frozen=True, slots=True)
class _Towards:
    """What decoding towards a time gave: a frame, whether the stream ended, whether it was late.

    ``overshot``: the first frame decoded was already past the time (the seek landed after it).
    """

    frame: VideoFrame | None
    exhausted: bool
    overshot: bool


@dataclass(frozen=True, slots=True)
class Picture:
    """A decoded picture at display orientation and square pixels, scaled to the output width."""

    at_s: float
    frame_s: float
    frame: VideoFrame
    mean_luma: float
    contrast: float
    method: str

    @property
    def blank(self) -> bool:
        """Whether the picture is too dark or too flat to stand for the video."""
        return self.mean_luma < BLANK_MEAN_LUMA or self.contrast < BLANK_MIN_CONTRAST


def output_size(
    width: int, height: int, *, sar: Fraction, rotation: int, width_px: int
) -> tuple[int, int]:
    """The even output size of a picture shown ``width_px`` wide at its display aspect ratio."""
    display_w = width * (sar if sar > 0 else 1)
    display_h = Fraction(height)
    if rotation % 180 == 90:
        display_w, display_h = display_h, display_w
    out_h = max(2, round(width_px * display_h / display_w / 2) * 2)
    return max(2, width_px // 2 * 2), out_h


def luma_stats(
    frame: VideoFrame, *, reformatter: VideoReformatter | None = None
) -> tuple[float, float]:
    """Mean and standard deviation of the luma, measured on a 64-pixel-wide gray copy.

    A blank picture is blank at any size; the tiny copy keeps this pure-Python sum cheap.
    ``reformatter`` keeps its scaler between pictures (see ``FrameSource``).
    """
    width = min(frame.width, STATS_WIDTH_PX)
    height = max(1, round(frame.height * width / frame.width))
    gray = (reformatter or VideoReformatter()).reformat(frame, width, height, format="gray")
    plane = gray.planes[0]
    data, stride = bytes(plane), plane.line_size
    values = b"".join(data[row * stride : row * stride + width] for row in range(height))
    count = len(values)
    mean = sum(values) / count
    variance = max(sum(map(operator.mul, values, values)) / count - mean * mean, 0.0)
    return mean, math.sqrt(variance)


@dataclass(slots=True)
class _Slot:
    ready: threading.Event
    picture: Picture | None = None


class KeyframePictures:
    """Keyframe pictures by the keyframe's timestamp, shared by every container of one capture.

    Thumbnails and storyboard tiles come from one plan over one video, so a thumbnail that lands
    on a tile's keyframe, or a blank thumbnail's search that wanders onto one, gets the picture
    decoded first instead of decoding the keyframe again. With several decoders in threads the
    second waits for the first. Pictures are at output width, so a capture's few dozen are small.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[int, _Slot] = {}

    def get(self, pts: int, make: Callable[[], Picture | None]) -> Picture | None:
        """The picture of the keyframe at ``pts``: made by ``make`` once, whatever it gave."""
        with self._lock:
            slot = self._slots.get(pts)
            mine = slot is None
            if slot is None:
                slot = self._slots[pts] = _Slot(threading.Event())
        if not mine:
            slot.ready.wait()
            return slot.picture
        try:
            slot.picture = make()
        finally:
            slot.ready.set()
        return slot.picture


class FrameSource:
    """An opened video: ``picture_at`` seeks and decodes; ``representative`` avoids blanks."""

    def __init__(
        self,
        container: av.container.InputContainer,
        *,
        video_key: str,
        width_px: int,
        pictures: KeyframePictures | None = None,
        reader: RangeReader | None = None,
    ) -> None:
        self._container = container
        self._reader = reader
        # The bytes from where a seek lands to the end of its keyframe, largest seen, with a
        # margin: what to fetch at the next seek when the index has no sizes (Matroska's cues).
        self._keyframe_span = 0
        self._key = video_key
        streams = container.streams.video
        if not streams:
            raise NotAVideo("the file has no video stream", video_key=video_key)
        self._stream: VideoStream = streams[0]
        self._stream.thread_count = 1
        # Only the picture is wanted: a demuxer that skips the other streams' packets (MP4)
        # never reads their bytes.
        for stream in container.streams:
            if stream.index != self._stream.index:
                stream.discard = Discard.all
        self._width_px = width_px
        self._sar = sample_aspect(self._stream)
        # Times are on the video's own timeline: 0 is its first frame, whatever offset the
        # container puts before it (MPEG-TS clocks, MP4 edit lists, audio that leads).
        start, time_base = self._stream.start_time, self._stream.time_base
        self._origin_s = float(start * time_base) if start is not None and time_base else 0.0
        self._pictures = pictures if pictures is not None else KeyframePictures()
        # A frame's own ``reformat`` builds a new scaler for every new frame (most of the cost
        # of scaling a 1080p picture); these keep theirs while the sizes stay the same.
        self._scaler = VideoReformatter()
        self._stats_scaler = VideoReformatter()
        self._forward_s: float | None = None
        self.decoded = 0
        # Keyframe packets handed to the decoder, by timestamp, on every path: what proves that
        # no keyframe is decoded twice.
        self.keyframe_decodes: Counter[int | None] = Counter()

    @property
    def duration_s(self) -> float:
        """The video's duration by the one rule of ``playable_duration_s`` (0 when unknown)."""
        return playable_duration_s(self._container)

    def picture_at(self, at_s: float, *, max_distance_s: float) -> Picture | None:
        """The keyframe at or before ``at_s``; an accurate decode when that yields nothing.

        A keyframe further than ``max_distance_s`` before ``at_s`` (long GOPs, short videos)
        would show another part of the video: then the frames up to ``at_s`` are decoded.
        """
        forward = self._forward_s
        if forward is not None and 0 < at_s - forward <= max_distance_s:
            # The decoder sits just after an earlier accurate frame: decoding on is cheaper
            # than seeking back to the keyframe (long GOPs would otherwise cost O(n^2)).
            picture = self._accurate(at_s, seek=False)
            if picture is not None:
                return picture
        picture = self._keyframe(at_s)
        # A seek that lands after the time (MPEG-TS) shows a later part of the video.
        if picture is not None and -_AT_TOLERANCE_S <= at_s - picture.frame_s <= max_distance_s:
            return picture
        return self._accurate(at_s) or picture

    def representative(
        self, at_s: float, *, step_s: float, attempts: int, max_distance_s: float
    ) -> Picture:
        """A non-blank picture near ``at_s``: nearby keyframes, then an accurate seek.

        Raises:
            NotAVideo: no frame could be decoded anywhere near ``at_s`` nor at the start.
        """
        tried: list[Picture] = []
        for k in range(attempts):
            offset = (k + 1) // 2 * step_s * (1 if k % 2 else -1) if k else 0.0
            end_s = self.duration_s - 0.001 if self.duration_s else math.inf
            candidate_s = min(max(at_s + offset, 0.0), end_s)
            picture = self.picture_at(candidate_s, max_distance_s=max_distance_s)
            if picture is None:
                continue
            if not picture.blank:
                return picture
            tried.append(picture)
        accurate = self._accurate(at_s)
        if accurate is not None:
            if not accurate.blank:
                return accurate
            tried.append(accurate)
        if not tried:
            first = self._accurate(0.0)
            if first is None:
                raise NotAVideo(f"no frame could be decoded near {at_s:.1f} s", video_key=self._key)
            tried.append(first)
        return max(tried, key=lambda p: (p.contrast, p.mean_luma))

    def _keyframe(self, at_s: float) -> Picture | None:
        self._forward_s = None
        target = self._pts(at_s)
        self._expect_keyframe(target)
        # Seeking flushes the decoder: a drained one stays at end-of-stream until flushed.
        if not self._seek(target):
            return None
        try:
            packet = self._first_keyframe_packet()
        except av.error.FFmpegError:
            # A damaged packet: the accurate path decodes around it.
            return None
        if packet is None:
            return None
        self._learn_span(packet)
        if packet.pts is None:
            return self._decode_keyframe(packet, at_s)
        # Keyed by the packet's own timestamp: the keyframe this seek really landed on.
        picture = self._pictures.get(packet.pts, lambda: self._decode_keyframe(packet, at_s))
        if picture is None or picture.at_s == at_s:
            return picture
        return dataclasses.replace(picture, at_s=at_s)

    def _expect_keyframe(self, target: int) -> None:
        """Tell the reader how many bytes to fetch where the seek to ``target`` lands.

        The keyframe's own size from the index (MP4), else the largest span a keyframe took so
        far (Matroska's cues point at clusters and carry no size), else a block (no index): one
        request of the right size per keyframe, where a block would read past a small keyframe
        and a short guess would cost a second request. Keyframes that follow within a block
        ride along: on a small or low-bitrate video the plan's next picture is often the next
        keyframe, and one request is cheaper than two.
        """
        if self._reader is None:
            return
        entries = self._stream.index_entries
        indexed = self._container.format.name.split(",")[0] in _SEEKS_BY_INDEX
        found = entries.search_timestamp(target, backward=True) if indexed and len(entries) else -1
        if found < 0:
            # No index (MPEG-TS and the like): the seek searches by reading here and there, and
            # blocks serve it.
            self._reader.expect(None)
            return
        start = entries[found].pos
        end = start + (entries[found].size or self._keyframe_span)
        if end == start:
            self._reader.expect(None)
            return
        limit = start + self._reader.block_bytes
        for following in range(found + 1, len(entries)):
            entry = entries[following]
            if entry.pos < start or entry.pos >= limit:
                break
            if entry.is_keyframe:
                entry_end = entry.pos + (entry.size or self._keyframe_span)
                if entry_end > limit:
                    break
                end = max(end, entry_end)
        self._reader.expect(end - start)

    def _learn_span(self, packet: av.Packet[VideoStream]) -> None:
        if self._reader is None or packet.pos is None or packet.pos < self._reader.jump_pos:
            return
        span = packet.pos + packet.size - self._reader.jump_pos
        self._keyframe_span = max(self._keyframe_span, round(span * (1 + KEYFRAME_SPAN_MARGIN)))

    def _first_keyframe_packet(self) -> av.Packet[VideoStream] | None:
        for packet in self._container.demux(self._stream):
            if packet.size and packet.is_keyframe:
                return packet
        return None

    def _decode_keyframe(self, packet: av.Packet[VideoStream], at_s: float) -> Picture | None:
        try:
            frames = self._decode(packet)
            if not frames:
                # Reordering delay (B-frames): drain to get the keyframe out.
                frames = self._decode(None)
        except av.error.FFmpegError:
            return None
        if not frames:
            return None
        packet_s = (
            float(packet.pts * packet.time_base) - self._origin_s
            if packet.pts is not None and packet.time_base is not None
            else at_s
        )
        return self._picture(frames[0], at_s, "keyframe", fallback_s=packet_s)

    def _decode(self, packet: av.Packet[VideoStream] | None) -> list[VideoFrame]:
        """Hand one packet (None: drain) to the decoder: the only way packets reach it."""
        if packet is not None and packet.is_keyframe and packet.size:
            self.keyframe_decodes[packet.pts] += 1
        return self._stream.codec_context.decode(packet)

    def _accurate(self, at_s: float, *, seek: bool = True) -> Picture | None:
        target = self._pts(at_s)
        self._forward_s = None
        if seek and self._reader is not None:
            # Decoding on from a keyframe reads a run of frames: start with a block, not with
            # one keyframe's size.
            self._reader.expect(None)
        decoded = self._seek_before(target) if seek else self._decode_until(target)
        if decoded.frame is None:
            return None
        picture = self._picture(decoded.frame, at_s, "accurate")
        # A decoder that reached the end of the stream is drained: it cannot decode on.
        self._forward_s = None if decoded.exhausted else picture.frame_s
        return picture

    def _seek_before(self, target: int) -> _Towards:
        """Seek so that decoding starts at or before ``target``, and decode up to it.

        Without an index (MPEG-TS) ffmpeg's timestamp search can land on the keyframe after the
        target, or past the only keyframe so that nothing decodes: start earlier, and at last
        at the first frame.
        """
        time_base = self._stream.time_base or Fraction(1, 1000)
        first = self._stream.start_time or 0
        decoded = _Towards(None, exhausted=True, overshot=False)
        for back_s in SEEK_BACKOFF_S:
            start = max(target - int(back_s / time_base), 0) if back_s is not None else 0
            if not self._seek(start):
                return decoded
            decoded = self._decode_until(target)
            if (decoded.frame is not None and not decoded.overshot) or start <= first:
                return decoded
        return decoded

    def _seek(self, target: int) -> bool:
        try:
            self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
        except av.error.FFmpegError:
            return False
        self._stream.codec_context.flush_buffers()
        return True

    def _decode_until(self, target: int) -> _Towards:
        """The first frame at or after ``target`` (else the last one)."""
        latest: VideoFrame | None = None
        try:
            for packet in self._container.demux(self._stream):
                # The empty packets at the end drain the decoder, as ``container.decode`` does.
                for frame in self._decode(packet):
                    if latest is None and frame.pts is not None and frame.pts > target:
                        return _Towards(frame, exhausted=False, overshot=True)
                    latest = frame
                    if frame.pts is not None and frame.pts >= target:
                        return _Towards(latest, exhausted=False, overshot=False)
        except av.error.EOFError:
            # The decoder was drained by an earlier pass that reached the last frame.
            pass
        except av.error.InvalidDataError:
            pass
        return _Towards(latest, exhausted=True, overshot=False)

    def _pts(self, at_s: float) -> int:
        time_base = self._stream.time_base or Fraction(1, 1000)
        start = self._stream.start_time or 0
        return int(at_s / time_base) + start

    def _picture(
        self, frame: VideoFrame, at_s: float, method: str, *, fallback_s: float | None = None
    ) -> Picture:
        self.decoded += 1
        rotation = int(frame.rotation or 0) % 360
        out_w, out_h = output_size(
            frame.width, frame.height, sar=self._sar, rotation=rotation, width_px=self._width_px
        )
        turned = rotation % 180 == 90
        scaled = self._scaler.reformat(
            frame, out_h if turned else out_w, out_w if turned else out_h, format="yuvj420p"
        )
        if rotation in _TRANSPOSE:
            scaled = _rotate(scaled, _TRANSPOSE[rotation])
        mean, contrast = luma_stats(scaled, reformatter=self._stats_scaler)
        frame_s = float(frame.time) - self._origin_s if frame.time is not None else math.nan
        if math.isnan(frame_s):
            frame_s = fallback_s if fallback_s is not None else at_s
        return Picture(at_s, round(frame_s, 3), scaled, mean, contrast, method)


@contextmanager
def open_source(
    reader: io.RawIOBase,
    *,
    video_key: str,
    width_px: int,
    max_pixels: int,
    pictures: KeyframePictures | None = None,
) -> Iterator[FrameSource]:
    """Open ``reader`` with PyAV as an allowed container, reading only through it.

    The demuxer is forced to the container ``workers.media.formats`` recognises, and any attempt to
    open another resource (a URL, a path) is refused, so nothing but the object's own bytes is
    ever read. Decoders refuse frames above ``max_pixels`` before allocating them.

    Raises:
        NotAVideo: not an allowed container, or PyAV cannot read it as one.
        VideoTooLarge: its frames have more than ``max_pixels`` pixels.
        ObjectMissing / StorageUnavailable: from the reader.
    """
    container = open_container(reader, video_key=video_key, max_pixels=max_pixels)
    try:
        yield FrameSource(
            container,
            video_key=video_key,
            width_px=width_px,
            pictures=pictures,
            reader=reader if isinstance(reader, RangeReader) else None,
        )
    finally:
        container.close()


def open_container(
    reader: io.RawIOBase, *, video_key: str, max_pixels: int
) -> av.container.InputContainer:
    """The allow-listed, no-nested-opens PyAV container behind ``open_source``."""
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


def _rotate(frame: VideoFrame, filters: tuple[str, ...]) -> VideoFrame:
    """Turn a small frame to display orientation with ffmpeg's transpose/flip filters."""
    graph = av.filter.Graph()
    time_base = Fraction(1, 1000)
    nodes = [
        graph.add_buffer(
            width=frame.width, height=frame.height, format=frame.format, time_base=time_base
        )
    ]
    for spec in filters:
        name, _, args = spec.partition("=")
        nodes.append(graph.add(name, args or None))
    nodes.append(graph.add("buffersink"))
    for upstream, downstream in itertools.pairwise(nodes):
        upstream.link_to(downstream)
    graph.configure()
    frame.pts = 0
    frame.time_base = time_base
    graph.push(frame)
    out = graph.pull()
    assert isinstance(out, VideoFrame)
    return out


def encode_jpeg(frame: VideoFrame, *, quality: int) -> bytes:
    """Encode one frame as a baseline JPEG (``quality`` is ffmpeg's ``-q:v``, 2 best, 31 worst)."""
    codec = av.CodecContext.create("mjpeg", "w")
    assert isinstance(codec, av.VideoCodecContext)
    codec.width, codec.height = frame.width, frame.height
    codec.pix_fmt = "yuvj420p"
    codec.time_base = Fraction(1, 25)
    codec.qscale = True
    codec.global_quality = quality * 118  # FF_QP2LAMBDA: what ``-q:v`` sets
    frame = frame.reformat(format="yuvj420p")
    frame.pts = 0
    packets = codec.encode(frame) + codec.encode(None)
    return b"".join(bytes(packet) for packet in packets)
