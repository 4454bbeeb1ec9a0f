"""Decoded pictures as the thumbnails and tiles use them: display size, blankness, JPEG.

A ``Picture`` is a frame already scaled to the output width and turned to display orientation;
``KeyframePictures`` keeps one per keyframe for a capture so that none is decoded twice.
"""

from __future__ import annotations

import itertools
import math
import operator
import threading
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import av
from av.video.frame import VideoFrame
from av.video.reformatter import VideoReformatter

# A picture darker than this mean luma (0-255) or flatter than this standard deviation is
# "blank": a fade, a black leader, a title card's empty background.
BLANK_MEAN_LUMA = 28.0
BLANK_MIN_CONTRAST = 6.0
STATS_WIDTH_PX = 64
# PyAV reports the display matrix angle counterclockwise (libavutil's convention), as ffmpeg's
# autorotate reads it: 90 means turn the picture a quarter counterclockwise.
_TRANSPOSE = {90: ("transpose=cclock",), 180: ("hflip", "vflip"), 270: ("transpose=clock",)}


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


def to_display(frame: VideoFrame, rotation: int) -> VideoFrame:
    """``frame`` turned by the display matrix's ``rotation`` (0, 90, 180 or 270 degrees)."""
    filters = _TRANSPOSE.get(rotation)
    return _rotate(frame, filters) if filters else frame


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
