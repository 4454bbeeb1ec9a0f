"""The media fast path against moto's S3 over HTTP, with a byte-counting proxy in between.

The proxy sits where R2 would be: what it forwards from moto to the reader is what the storage
endpoint sent, so the bounded-read promise is checked in bytes and requests, not assumed.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import time
from pathlib import Path
from typing import Any

import av
import pytest

from producer.dev.samples import make_video
from schema.errors import ObjectMissing, StorageUnavailable
from schema.metadata import as_document
from schema.settings import DEFAULT_MAX_VIDEO_PIXELS
from tests.integration.conftest import BUCKET, Fleet
from tests.integration.media_bucket import LIMITS, Bucket
from tests.unit.test_storyboard import _parse_vtt
from workers.media.probe import plan_thumbnails
from workers.media.thumbnails import capture

pytestmark = pytest.mark.integration


def _jpeg(data: bytes) -> tuple[int, int, float]:
    """Width, height and mean luma of a JPEG, decoded with PyAV."""
    with av.open(io.BytesIO(data)) as container:
        frame = next(container.decode(video=0))
    gray = frame.reformat(format="gray")
    plane = gray.planes[0]
    raw = bytes(plane)
    rows = [raw[r * plane.line_size : r * plane.line_size + gray.width] for r in range(gray.height)]
    pixels = b"".join(rows)
    return frame.width, frame.height, sum(pixels) / len(pixels)


def _digest(data: bytes) -> str:
    """The version a derived object's key carries: the start of its bytes' SHA-256."""
    return hashlib.sha256(data).hexdigest()[:16]


def _black_at_planned_times(path: Path, seconds: int) -> Path:
    """Pattern with a black second around every odd second: 5 thumbnails of 10 s land on black."""
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=25:duration={seconds}",
            "-vf", "drawbox=c=black:t=fill:enable='between(mod(t,2),0.5,1.5)'",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "12", "-pix_fmt", "yuv420p", str(path),
        ],
        check=True,
        timeout=120,
    )  # fmt: skip
    return path


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("index-at-end.mp4", {"faststart": False, "gop_frames": 25}),
        ("clip.mkv", {"gop_frames": 25}),
        ("clip.webm", {"codec": "libvpx-vp9", "gop_frames": 25}),
    ],
)
def test_thumbnails_come_from_each_container_by_seeking(
    bucket: Bucket, tmp_path: Path, name: str, options: dict[str, Any]
) -> None:
    # given a 6-second video in the bucket
    size = bucket.put(make_video(tmp_path / name, seconds=6, **options), f"up/{name}")
    # when five thumbnails are captured
    result = bucket.capture(f"up/{name}", 6.0)
    # then each is a 160x120 JPEG of a distinct moment, read in a few bounded requests
    assert [(_jpeg(s.jpeg)[:2]) for s in result.shots] == [(160, 120)] * 5
    assert len({s.frame_s for s in result.shots}) == 5
    assert result.object_bytes == size
    assert bucket.proxy.requests == result.requests


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"rotate_deg": 90}, (160, 214)),
        ({"sar": "2:1"}, (160, 60)),
        ({"size": "640x360", "sar": "3:4"}, (160, 120)),
    ],
)
def test_thumbnails_have_the_display_aspect_of_rotated_and_anamorphic_sources(
    bucket: Bucket, tmp_path: Path, options: dict[str, Any], expected: tuple[int, int]
) -> None:
    path = make_video(tmp_path / "odd.mp4", seconds=3, **options)
    bucket.put(path, "up/odd.mp4")
    result = bucket.capture("up/odd.mp4", 3.0, count=3)
    assert {_jpeg(s.jpeg)[:2] for s in result.shots} == {expected}


def test_black_frames_at_the_planned_times_are_replaced_by_nearby_pictures(
    bucket: Bucket, tmp_path: Path
) -> None:
    bucket.put(_black_at_planned_times(tmp_path / "black.mp4", 10), "up/black.mp4")
    result = bucket.capture("up/black.mp4", 10.0)
    lumas = [_jpeg(s.jpeg)[2] for s in result.shots]
    assert plan_thumbnails(10.0, 5) == [1.0, 3.0, 5.0, 7.0, 9.0]
    assert all(luma > 50 for luma in lumas), lumas
    assert not any(s.blank for s in result.shots)


def test_a_larger_file_is_read_in_a_few_bounded_ranges(bucket: Bucket, tmp_path: Path) -> None:
    # given a 40-second 720p video with a keyframe every second (tens of MB)
    path = tmp_path / "large.mp4"
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25:duration=40",
            "-c:v", "libx264", "-preset", "ultrafast", "-qp", "8", "-g", "25",
            "-movflags", "+faststart", str(path),
        ],
        check=True,
        timeout=180,
    )  # fmt: skip
    size = bucket.put(path, "up/large.mp4")
    # when ten thumbnails and a 20-tile storyboard are captured
    result = bucket.capture("up/large.mp4", 40.0, count=10, tiles=20)
    # then moto sent a few percent of the object, in at most two requests per picture
    assert size > 20_000_000
    assert bucket.proxy.bytes_sent < 0.10 * size, (bucket.proxy.bytes_sent, size)
    assert bucket.proxy.requests <= 2 * (10 + 20) + 4
    assert result.sprite_jpeg is not None
    assert _jpeg(result.sprite_jpeg)[:2] == (5 * 96, 4 * 54)
    # and two decoders in parallel over one cache pick the same frames within the same bounds
    parallel = bucket.capture("up/large.mp4", 40.0, count=10, tiles=20, decoders=2)
    assert [s.frame_s for s in parallel.shots] == [s.frame_s for s in result.shots]
    assert bucket.proxy.bytes_sent < 0.10 * size
    assert parallel.bytes_read <= bucket.proxy.bytes_sent


def test_chain_stores_a_non_black_poster_and_a_storyboard(fleet: Fleet, tmp_path: Path) -> None:
    # given a video whose frames at the planned thumbnail times are black
    body = fleet.upload(_black_at_planned_times(tmp_path / "black.mp4", 10), "uploads/black.mp4")
    # when the chain runs
    (outcome,) = fleet.deliver(body)
    row = fleet.wait(outcome.task_id)
    assert row.status == "completed", row.error_message
    meta = as_document(row.metadata)
    # then the poster is a real picture
    with fleet.engine.connect() as conn:
        poster = conn.exec_driver_sql("SELECT thumbnail_url FROM videos").scalar_one()
    assert poster == meta["thumbnails"]["poster_key"]
    data = fleet.s3.get_object(Bucket=BUCKET, Key=poster)["Body"].read()
    assert _jpeg(data)[2] > 50
    # and the storyboard sits beside the thumbnails, its cues pointing inside the sprite
    board = meta["storyboard"]
    prefix = "thumbnails/uploads/black.mp4/"
    assert board["sprite_key"].startswith(prefix + "storyboard.")
    assert board["vtt_key"].startswith(prefix + "storyboard.")
    assert set(fleet.keys(prefix)) == {
        *meta["thumbnails"]["keys"],
        board["sprite_key"],
        board["vtt_key"],
    }
    vtt = fleet.s3.get_object(Bucket=BUCKET, Key=board["vtt_key"])["Body"].read().decode()
    cues = _parse_vtt(vtt)
    sprite = fleet.s3.get_object(Bucket=BUCKET, Key=board["sprite_key"])["Body"].read()
    # each derived object's key is versioned by its bytes, and any cache may keep it for good
    assert board["sprite_key"] == prefix + f"storyboard.{_digest(sprite)}.jpg"
    assert board["vtt_key"] == prefix + f"storyboard.{_digest(vtt.encode())}.vtt"
    for key in meta["thumbnails"]["keys"]:
        stored = fleet.s3.get_object(Bucket=BUCKET, Key=key)
        assert key.endswith(f".{_digest(stored['Body'].read())}.jpg")
        assert stored["CacheControl"] == "public, max-age=31536000, immutable"
    width, height, _ = _jpeg(sprite)
    assert len(cues) == board["tiles"] == 5
    assert (width, height) == (
        board["columns"] * board["tile_width_px"],
        board["rows"] * board["tile_height_px"],
    )
    for _, _, name, (x, y, w, h) in cues:
        assert name == board["sprite_key"].rpartition("/")[2]  # resolved beside the map
        assert x + w <= width
        assert y + h <= height
    assert meta["reads"]["bytes"] <= meta["reads"]["object_bytes"]
    assert meta["reads"]["requests"] >= 1


def test_a_read_past_the_step_budget_stops_with_a_retryable_error(
    bucket: Bucket, tmp_path: Path
) -> None:
    bucket.put(make_video(tmp_path / "late.mp4", seconds=2), "up/late.mp4")
    url = bucket.s3.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "up/late.mp4"}, ExpiresIn=600
    )
    with pytest.raises(StorageUnavailable, match="time budget"):
        capture(
            url,
            [1.0],
            video_key="up/late.mp4",
            width_px=160,
            jpeg_quality=3,
            search_attempts=1,
            board=None,
            limits=LIMITS,
            pool=bucket.pool,
            max_pixels=DEFAULT_MAX_VIDEO_PIXELS,
            deadline=time.monotonic() - 1,
        )


def test_a_vanished_object_is_reported_missing(bucket: Bucket) -> None:
    url = bucket.s3.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "up/gone.mp4"}, ExpiresIn=600
    )
    with pytest.raises(ObjectMissing, match=r"up/gone\.mp4"):
        capture(
            url,
            [1.0],
            video_key="up/gone.mp4",
            width_px=160,
            jpeg_quality=3,
            search_attempts=1,
            board=None,
            limits=LIMITS,
            pool=bucket.pool,
            max_pixels=DEFAULT_MAX_VIDEO_PIXELS,
        )


def _gray(data: bytes, size: tuple[int, int]) -> bytes:
    with av.open(io.BytesIO(data)) as container:
        frame = next(container.decode(video=0)).reformat(*size, format="gray")
    plane = frame.planes[0]
    raw = bytes(plane)
    return b"".join(
        raw[r * plane.line_size : r * plane.line_size + size[0]] for r in range(size[1])
    )


@pytest.mark.parametrize("rotate_deg", [90, 180, 270])
def test_rotated_thumbnails_are_turned_the_way_ffmpeg_turns_them(
    bucket: Bucket, tmp_path: Path, rotate_deg: int
) -> None:
    # given a rotated video, and the first frame as ffmpeg's autorotation shows it
    path = make_video(tmp_path / "turned.mp4", seconds=2, rotate_deg=rotate_deg)
    bucket.put(path, "up/turned.mp4")
    reference = tmp_path / "reference.png"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(path), "-frames:v", "1",
         str(reference)],
        check=True,
        timeout=60,
    )  # fmt: skip
    # when one thumbnail of its first frame is captured
    result = bucket.capture("up/turned.mp4", 0.2, count=1)
    width, height, _ = _jpeg(result.shots[0].jpeg)
    assert result.shots[0].frame_s == 0
    # then it matches ffmpeg's picture far better than the picture turned half a turn
    mine = _gray(result.shots[0].jpeg, (width, height))
    same = _gray(reference.read_bytes(), (width, height))
    flipped = same[::-1]  # the reference turned by 180 degrees
    assert sum(abs(a - b) for a, b in zip(mine, same, strict=True)) * 3 < sum(
        abs(a - b) for a, b in zip(mine, flipped, strict=True)
    )
