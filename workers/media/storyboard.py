"""Storyboards: a sprite sheet of small tiles plus a WebVTT file mapping times to tiles.

Players (video.js, Plyr, Vidstack, PeerTube's) show the tile under the cursor when the user
scrubs: each cue's text is ``<sprite>#xywh=x,y,w,h``. Planning and the VTT text are pure; the
sprite is composed by ffmpeg's ``tile`` filter in-process from pictures already decoded by
keyframe seeks, so a storyboard never decodes the whole video.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import av
from av.video.format import VideoFormat
from av.video.frame import VideoFrame
from av.video.reformatter import VideoReformatter

from schema.metadata import Storyboard

SPRITE_NAME = "storyboard.jpg"
VTT_NAME = "storyboard.vtt"
VTT_CONTENT_TYPE = "text/vtt"


@dataclass(frozen=True, slots=True)
class Tile:
    """One cue: the time range it covers and where its picture sits in the sprite."""

    start_s: float
    end_s: float
    at_s: float
    x: int
    y: int


@dataclass(frozen=True, slots=True)
class StoryboardPlan:
    """The grid and the tiles of a storyboard."""

    tiles: tuple[Tile, ...]
    columns: int
    rows: int
    tile_width: int
    tile_height: int
    interval_s: float

    @property
    def times(self) -> list[float]:
        """The times to seek to, one per tile, in order."""
        return [tile.at_s for tile in self.tiles]

    def summary(self, *, sprite_key: str, vtt_key: str) -> Storyboard:
        """What the task's metadata records of the stored storyboard."""
        return Storyboard(
            sprite_key=sprite_key,
            vtt_key=vtt_key,
            tiles=len(self.tiles),
            columns=self.columns,
            rows=self.rows,
            tile_width_px=self.tile_width,
            tile_height_px=self.tile_height,
            interval_s=self.interval_s,
        )


def plan_storyboard(
    duration_s: float,
    *,
    min_interval_s: float,
    max_tiles: int,
    columns: int,
    tile_width: int,
    tile_height: int,
) -> StoryboardPlan:
    """Cut the video into equal ranges, one tile each, no more than ``max_tiles``.

    A range is at least ``min_interval_s`` long (a short clip gets few tiles) and longer when the
    video is long, so the sprite's size and the number of seeks stay bounded. Each tile shows the
    middle of its range.
    """
    if duration_s <= 0 or max_tiles < 1:
        return StoryboardPlan((), 0, 0, tile_width, tile_height, 0.0)
    count = max(1, min(max_tiles, math.floor(duration_s / min_interval_s)))
    interval = duration_s / count
    cols = min(columns, count)
    tiles = tuple(
        Tile(
            start_s=round(i * interval, 3),
            end_s=round(min((i + 1) * interval, duration_s), 3),
            at_s=round((i + 0.5) * interval, 3),
            x=(i % cols) * tile_width,
            y=(i // cols) * tile_height,
        )
        for i in range(count)
    )
    return StoryboardPlan(
        tiles, cols, math.ceil(count / cols), tile_width, tile_height, round(interval, 3)
    )


def vtt_text(plan: StoryboardPlan, *, sprite_url: str) -> str:
    """The WebVTT thumbnails track: one cue per tile pointing at its rectangle in the sprite."""
    cues = ["WEBVTT", ""]
    for tile in plan.tiles:
        cues.append(f"{_timestamp(tile.start_s)} --> {_timestamp(tile.end_s)}")
        cues.append(f"{sprite_url}#xywh={tile.x},{tile.y},{plan.tile_width},{plan.tile_height}")
        cues.append("")
    return "\n".join(cues)


def compose_sprite(plan: StoryboardPlan, pictures: Sequence[VideoFrame]) -> VideoFrame:
    """Lay the pictures out on the plan's grid (empty cells stay black) with ffmpeg's ``tile``."""
    if not pictures or len(pictures) != len(plan.tiles):
        raise ValueError("one picture per tile is needed")
    time_base = Fraction(1, 1000)
    graph = av.filter.Graph()
    source = graph.add_buffer(
        width=plan.tile_width,
        height=plan.tile_height,
        format=VideoFormat("yuvj420p"),
        time_base=time_base,
    )
    tile = graph.add("tile", f"{plan.columns}x{plan.rows}")
    sink = graph.add("buffersink")
    source.link_to(tile)
    tile.link_to(sink)
    graph.configure()
    # One scaler for every tile: a frame's own ``reformat`` would build one per tile.
    scaler = VideoReformatter()
    for index, picture in enumerate(pictures):
        frame = scaler.reformat(picture, plan.tile_width, plan.tile_height, format="yuvj420p")
        frame.pts = index
        frame.time_base = time_base
        graph.push(frame)
    graph.push(None)
    sprite = graph.pull()
    assert isinstance(sprite, VideoFrame)
    return sprite


def _timestamp(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"
