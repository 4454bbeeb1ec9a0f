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
import io
import logging
import math
from collections import Counter
from collections.abc import Iterator
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

from schema.errors import NotAVideo
from workers.media import containers
from workers.media.pictures import KeyframePictures, Picture, luma_stats, output_size, to_display
from workers.media.rangereader import RangeReader

logger = logging.getLogger(__name__)

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


@dataclass(frozen=True, slots=True)
class _Towards:
    """What decoding towards a time gave: a frame, whether the stream ended, whether it was late.

    ``overshot``: the first frame decoded was already past the time (the seek landed after it).
    """

    frame: VideoFrame | None
    exhausted: bool
    overshot: bool


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
        self._sar = containers.sample_aspect(self._stream)
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
        return containers.playable_duration_s(self._container)

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
        scaled = to_display(scaled, rotation)
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
    container = containers.open_container(reader, video_key=video_key, max_pixels=max_pixels)
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
