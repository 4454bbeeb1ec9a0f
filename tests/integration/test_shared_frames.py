"""Thumbnails and storyboard tiles from one plan: no keyframe fetched or decoded twice.

The video is made so that sharing is needed beyond neighbours in time: a thumbnail falls on a
tile's keyframe, and another lands on black, so that its search for a picture goes back to a
tile's keyframe decoded two steps earlier. Decodes are counted where packets reach the real
decoder; fetches where the range reader asks the store.
"""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import pytest

from tests.integration.media_bucket import Bucket
from workers.media.rangereader import RangeSource

pytestmark = pytest.mark.integration

SECONDS = 20
# 10 fps with a keyframe every 10 frames: one keyframe a second, at whole seconds.
BLACK_FROM_S, BLACK_TO_S = 12, 14


@pytest.fixture(scope="module")
def shared_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 s, a keyframe each second, black from 12 s to 14 s."""
    path = tmp_path_factory.mktemp("shared") / "shared.mp4"
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=10:duration={SECONDS}",
            "-vf", f"drawbox=c=black:t=fill:enable='between(t,{BLACK_FROM_S},{BLACK_TO_S})'",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-pix_fmt", "yuv420p",
            str(path),
        ],
        check=True,
        timeout=120,
    )  # fmt: skip
    return path


def _record_fetches(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Every byte range the reader asks the store for, in order."""
    fetched: list[tuple[int, int]] = []
    real_get = RangeSource._get

    def recording_get(self: RangeSource, start: int, end: int) -> bytes:
        fetched.append((start, end))
        return real_get(self, start, end)

    monkeypatch.setattr(RangeSource, "_get", recording_get)
    return fetched


@pytest.mark.parametrize("decoders", [1, 2])
def test_no_keyframe_is_fetched_or_decoded_twice_for_thumbnails_and_tiles(
    bucket: Bucket, shared_video: Path, monkeypatch: pytest.MonkeyPatch, decoders: int
) -> None:
    # given a video whose thumbnail times are 2.5, 7.5, 12.5 (black) and 17.5 s, and whose
    # ten tiles show 1, 3, ... 19 s: thumbnails at 7.5 and 17.5 s fall on tiles' keyframes, and
    # the black one at 12.5 s searches back to 11.25 s, the keyframe of the tile at 11 s
    bucket.put(shared_video, "up/shared.mp4")
    fetched = _record_fetches(monkeypatch)
    # when four thumbnails and ten tiles are captured
    result = bucket.capture("up/shared.mp4", float(SECONDS), count=4, tiles=10, decoders=decoders)
    # then each keyframe went to a decoder once: the tiles' ten, plus 2 s and the black 12 s
    assert result.keyframe_decodes == result.keyframes == 12
    assert [shot.frame_s for shot in result.shots] == [2.0, 7.0, 11.0, 17.0]
    assert not any(shot.blank for shot in result.shots)
    # and no byte was asked of the store twice
    assert fetched
    ordered = sorted(fetched)
    assert all(end < next_start for (_, end), (next_start, _) in itertools.pairwise(ordered))
    assert bucket.proxy.requests == result.requests == len(fetched)


def test_thumbnails_are_the_same_with_and_without_a_storyboard(
    bucket: Bucket, shared_video: Path
) -> None:
    # given the video in the bucket
    bucket.put(shared_video, "up/shared.mp4")
    # when thumbnails are captured alone, and again together with a storyboard
    alone = bucket.capture("up/shared.mp4", float(SECONDS), count=4)
    together = bucket.capture("up/shared.mp4", float(SECONDS), count=4, tiles=10)
    # then the shared pictures changed nothing in the thumbnails
    assert [(s.frame_s, s.method, s.jpeg) for s in together.shots] == [
        (s.frame_s, s.method, s.jpeg) for s in alone.shots
    ]
    assert together.poster_index == alone.poster_index
    assert together.sprite_jpeg is not None
