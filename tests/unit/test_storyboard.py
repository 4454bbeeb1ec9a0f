"""Pure planning of the media fast path: thumbnail times, tile layout, the WebVTT track."""

from __future__ import annotations

import itertools
import re
from fractions import Fraction

import pytest

from workers.media.pictures import output_size
from workers.media.probe import plan_thumbnails
from workers.media.rangereader import _total_size
from workers.media.storyboard import plan_storyboard, vtt_text
from workers.media.thumbnails import Shot, choose_poster

_TIME = r"(\d\d):(\d\d):(\d\d)\.(\d{3})"
_CUE = re.compile(_TIME + " --> " + _TIME + r"\n(\S+)#xywh=(\d+),(\d+),(\d+),(\d+)")


def _parse_vtt(text: str) -> list[tuple[float, float, str, tuple[int, int, int, int]]]:
    """Read a thumbnails track back: (start, end, sprite, (x, y, w, h)) per cue."""
    assert text.startswith("WEBVTT\n\n")
    cues = []
    for match in _CUE.finditer(text):
        g = [int(v) if v.isdigit() else v for v in match.groups()]
        start = g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000
        end = g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000
        cues.append((start, end, str(match.group(9)), (g[9], g[10], g[11], g[12])))
    return cues


def test_long_video_gets_at_most_max_tiles_spread_over_its_whole_length() -> None:
    plan = plan_storyboard(
        600, min_interval_s=2, max_tiles=30, columns=6, tile_width=160, tile_height=90
    )
    assert len(plan.tiles) == 30
    assert plan.interval_s == 20
    assert (plan.columns, plan.rows) == (6, 5)
    assert plan.times[0] == 10
    assert plan.times[-1] == 590
    assert plan.tiles[-1].end_s == 600


def test_short_clip_gets_one_tile_per_minimum_interval() -> None:
    plan = plan_storyboard(
        9, min_interval_s=2, max_tiles=30, columns=6, tile_width=160, tile_height=90
    )
    assert len(plan.tiles) == 4
    assert plan.columns == 4
    assert plan.rows == 1
    assert all(t.start_s < t.at_s < t.end_s for t in plan.tiles)


def test_clip_shorter_than_the_interval_still_gets_one_tile() -> None:
    plan = plan_storyboard(
        0.5, min_interval_s=2, max_tiles=30, columns=6, tile_width=160, tile_height=90
    )
    assert len(plan.tiles) == 1
    assert plan.tiles[0].end_s == 0.5


def test_tiles_fill_the_grid_row_by_row() -> None:
    plan = plan_storyboard(
        100, min_interval_s=10, max_tiles=30, columns=4, tile_width=160, tile_height=90
    )
    coords = [(t.x, t.y) for t in plan.tiles]
    assert coords[:5] == [(0, 0), (160, 0), (320, 0), (480, 0), (0, 90)]
    assert plan.rows == 3
    assert coords[-1] == (160, 180)


def test_vtt_cues_cover_the_video_and_point_at_each_tile() -> None:
    plan = plan_storyboard(
        3725, min_interval_s=2, max_tiles=50, columns=10, tile_width=120, tile_height=68
    )
    cues = _parse_vtt(vtt_text(plan, sprite_url="storyboard.jpg"))
    assert len(cues) == 50
    assert cues[0][0] == 0
    assert cues[-1][1] == pytest.approx(3725)
    for (_, end, sprite, _), (next_start, *_) in itertools.pairwise(cues):
        assert end == pytest.approx(next_start)
        assert sprite == "storyboard.jpg"
    for index, (_, _, _, (x, y, w, h)) in enumerate(cues):
        assert (w, h) == (120, 68)
        assert (x, y) == ((index % 10) * 120, (index // 10) * 68)
    assert "01:02:05.000" in vtt_text(plan, sprite_url="s.jpg")


def test_thumbnail_times_are_slice_middles_inside_the_video() -> None:
    assert plan_thumbnails(600, 10) == [30.0 + 60 * i for i in range(10)]
    assert plan_thumbnails(0, 10) == []


@pytest.mark.parametrize(
    ("size", "sar", "rotation", "expected"),
    [
        ((1920, 1080), Fraction(1), 0, (320, 180)),
        ((1920, 1080), Fraction(1), 90, (320, 568)),
        ((1920, 1080), Fraction(1), 270, (320, 568)),
        ((720, 576), Fraction(64, 45), 0, (320, 180)),
        ((320, 240), Fraction(2, 1), 0, (320, 120)),
    ],
)
def test_output_size_follows_the_display_aspect(
    size: tuple[int, int], sar: Fraction, rotation: int, expected: tuple[int, int]
) -> None:
    assert output_size(*size, sar=sar, rotation=rotation, width_px=320) == expected


def _shot(contrast: float, *, blank: bool) -> Shot:
    return Shot(0, 0, b"", mean_luma=100, contrast=contrast, blank=blank, method="keyframe")


def test_poster_is_the_first_non_blank_thumbnail() -> None:
    shots = [_shot(90, blank=True), _shot(20, blank=False), _shot(40, blank=False)]
    assert choose_poster(shots) == 1


def test_poster_falls_back_to_the_most_detailed_when_all_are_blank() -> None:
    assert choose_poster([_shot(1, blank=True), _shot(3, blank=True)]) == 1


def test_content_range_total_is_the_object_size() -> None:
    assert _total_size("bytes 0-131071/467954004", None) == 467954004
    assert _total_size("bytes 0-9/*", 5) == 5
    assert _total_size(None, None) is None
