"""Files at the edges of what a video is: one frame, a giant frame, a lying header, a clock offset.

Each is made by ffmpeg, put in moto's S3 and read over HTTP through the same reader and decoder
the steps use; a few go through a real worker, where the row is what a user sees.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from producer.dev import samples
from schema.errors import NotAVideo, VideoTooLarge
from schema.metadata import as_document
from schema.settings import DEFAULT_MAX_VIDEO_PIXELS
from schema.tables import videos
from tests.integration.conftest import Fleet
from tests.integration.media_bucket import Bucket
from workers.media.probe import probe

PIXELS = DEFAULT_MAX_VIDEO_PIXELS

pytestmark = pytest.mark.integration


def _ffmpeg(*args: str) -> None:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True, timeout=120
    )


def _frames(path: Path, count: int, *, codec: str = "libx264") -> Path:
    pix = ["-pix_fmt", "yuv420p"] if codec == "libx264" else []
    _ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
        "-frames:v", str(count), "-c:v", codec, *pix, str(path),
    )  # fmt: skip
    return path


def _giant_png_frame(path: Path) -> Path:
    """One 16000x16000 PNG frame in an MP4: 790 KB stored, about a gigabyte decoded."""
    _ffmpeg(
        "-f", "lavfi", "-i", "color=c=red:size=16000x16000",
        "-frames:v", "1", "-c:v", "png", str(path),
    )  # fmt: skip
    return path


def _lying_header(source: Path) -> bytes:
    """The MP4 with its movie header's duration set to 0xFFFFFFFF (49.7 days at 1 kHz)."""
    data = bytearray(source.read_bytes())
    mvhd = data.index(b"mvhd")
    assert data[mvhd + 4] == 0  # version 0: 32-bit times
    # type, version+flags, creation time, modification time, timescale, then the duration
    duration_at = mvhd + 4 + 4 + 4 + 4 + 4
    data[duration_at : duration_at + 4] = b"\xff\xff\xff\xff"
    return bytes(data)


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("one-frame.mp4", lambda p: _frames(p, 1)),
        ("five-frames.mp4", lambda p: _frames(p, 5)),
        ("one-png-frame.mp4", lambda p: _frames(p, 1, codec="png")),
    ],
)
def test_a_video_of_a_few_frames_gets_its_thumbnails(
    bucket: Bucket, tmp_path: Path, name: str, make: object
) -> None:
    # given a video of one or a few frames
    bucket.put(make(tmp_path / name), f"up/{name}")  # type: ignore[operator]
    # when it is probed and its thumbnails are cut
    info = bucket.probe(f"up/{name}")
    shots = bucket.capture(f"up/{name}", info.duration_s).shots
    # then there are five thumbnails (the same frame is fine) from inside the video
    assert len(shots) == 5
    assert all(0 <= s.frame_s <= info.duration_s for s in shots)


def test_a_giant_frame_s_refusal_does_not_follow_the_process_to_the_next_file(
    tmp_path: Path, h264_mp4: Path
) -> None:
    giant = _giant_png_frame(tmp_path / "giant.mp4").read_bytes()
    half = h264_mp4.read_bytes()[:5000]  # an MP4 cut short: not a video, and not too large
    with pytest.raises(VideoTooLarge):
        probe(io.BytesIO(giant), video_key="giant", size_bytes=None, max_pixels=PIXELS)
    # then the next open in the same process sees its own ffmpeg messages only
    with pytest.raises(NotAVideo, match="not a readable"):
        probe(io.BytesIO(half), video_key="half", size_bytes=None, max_pixels=PIXELS)


def test_a_giant_frame_is_refused_at_validation_before_it_is_decoded(
    bucket: Bucket, tmp_path: Path
) -> None:
    path = _giant_png_frame(tmp_path / "giant.mp4")
    bucket.put(path, "up/giant.mp4")
    with pytest.raises(VideoTooLarge, match="16000x16000"):
        bucket.probe("up/giant.mp4")
    # and a fresh process probing it never holds the decoded frame (about 1 GB). Its peak is
    # VmHWM, the high-water mark of its own memory: ru_maxrss would carry over the RSS of the
    # (large) test process it was forked from.
    code = (
        "import io, json, re, sys\n"
        "from workers.media.probe import probe\n"
        "try:\n"
        f"    probe(io.BytesIO(open(sys.argv[1], 'rb').read()), video_key='k', size_bytes=None,"
        f" max_pixels={DEFAULT_MAX_VIDEO_PIXELS})\n"
        "except Exception as exc:\n"
        "    status = open('/proc/self/status').read()\n"
        "    peak_kb = int(re.search(r'VmHWM:\\s+(\\d+) kB', status)[1])\n"
        "    print(json.dumps([type(exc).__name__, peak_kb // 1024]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], check=True, capture_output=True, text=True
    )
    error, peak_mb = json.loads(out.stdout)
    assert error == "VideoTooLarge"
    assert peak_mb < 300


def test_a_header_duration_the_streams_contradict_is_not_believed(
    bucket: Bucket, tmp_path: Path
) -> None:
    clip = samples.make_video(tmp_path / "clip.mp4", seconds=3, size="160x120")
    bucket.s3.put_object(Bucket="videofleet-test", Key="up/liar.mp4", Body=_lying_header(clip))
    assert bucket.probe("up/liar.mp4").duration_s == pytest.approx(3.0, abs=0.1)


def _video_late(path: Path) -> Path:
    """An MP4 whose audio starts at 0 and whose video starts 1.5 s later (an edit list)."""
    _ffmpeg(
        "-f", "lavfi", "-i", "sine=frequency=440:duration=7.5",
        "-itsoffset", "1.5", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=6",
        "-map", "0:a", "-map", "1:v", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25",
        "-pix_fmt", "yuv420p", "-c:a", "aac", str(path),
    )  # fmt: skip
    return path


@pytest.mark.parametrize(
    ("name", "make"),
    [
        # MPEG-TS clocks start at 1.4 s
        ("offset.ts", lambda p: samples.make_video(p, seconds=6, gop_frames=25)),
        ("video-late.mp4", _video_late),
    ],
)
def test_thumbnails_land_at_the_planned_times_when_the_video_does_not_start_at_zero(
    bucket: Bucket, tmp_path: Path, name: str, make: object
) -> None:
    # given a video whose first frame is not at 0 s on the container's clock
    bucket.put(make(tmp_path / name), f"up/{name}")  # type: ignore[operator]
    # when its five thumbnails are cut
    info = bucket.probe(f"up/{name}")
    shots = bucket.capture(f"up/{name}", info.duration_s).shots
    # then each comes from its own slice of the video (keyframes every second)
    slice_s = info.duration_s / 5
    assert len({s.frame_s for s in shots}) == 5
    for shot in shots:
        assert shot.at_s - slice_s <= shot.frame_s <= shot.at_s + 0.1, shots


def test_a_real_worker_completes_short_and_offset_videos_and_refuses_a_giant_frame(
    fleet: Fleet, tmp_path: Path
) -> None:
    uploads = {
        "one-frame.mp4": _frames(tmp_path / "one-frame.mp4", 1),
        # an MPEG-TS under an .mp4 key: the bytes, not the name, decide the container
        "clip-ts.mp4": samples.make_video(tmp_path / "clip.ts", seconds=3),
        "giant.mp4": _giant_png_frame(tmp_path / "giant.mp4"),
    }
    outcomes = {
        name: fleet.deliver(fleet.upload(path, f"uploads/{name}"))[0]
        for name, path in uploads.items()
    }
    rows = {name: fleet.wait(o.task_id) for name, o in outcomes.items()}
    assert rows["one-frame.mp4"].status == "completed"
    assert rows["clip-ts.mp4"].status == "completed"
    assert as_document(rows["clip-ts.mp4"].metadata)["probe"]["container"] == "mpegts"
    assert len(fleet.thumbnail_keys("thumbnails/uploads/clip-ts.mp4/")) == 5
    giant = rows["giant.mp4"]
    assert (giant.status, giant.retry_count) == ("failed", 0)
    assert "16000x16000" in giant.error_message
    assert "MAX_VIDEO_PIXELS" in giant.error_message
    assert as_document(giant.metadata)["error_class"] == "VideoTooLarge"


def test_an_overwritten_key_is_processed_once_for_the_version_in_the_bucket(
    fleet: Fleet, tmp_path: Path
) -> None:
    # given a key uploaded, then overwritten before the first notification is processed
    first = fleet.upload(samples.make_video(tmp_path / "v1.mp4", seconds=2), "uploads/same.mp4")
    second = fleet.upload(samples.make_video(tmp_path / "v2.mp4", seconds=3), "uploads/same.mp4")
    assert first["object"]["eTag"] != second["object"]["eTag"]
    # when both notifications arrive, the older one first
    [old] = fleet.deliver(first)
    old_row = fleet.wait(old.task_id)
    [new] = fleet.deliver(second)
    new_row = fleet.wait(new.task_id)
    # then the older task ends superseded without work or retries, the newer one completes
    assert (old_row.status, old_row.retry_count) == ("failed", 0)
    assert old_row.error_message.startswith("validate-video: superseded: uploads/same.mp4")
    assert as_document(old_row.metadata).get("probe") is None
    assert new_row.status == "completed"
    assert as_document(new_row.metadata)["probe"]["duration_s"] == pytest.approx(3.0, abs=0.1)


def test_a_key_overwritten_after_processing_gets_the_new_versions_size(
    fleet: Fleet, tmp_path: Path
) -> None:
    # given a video processed once
    first = fleet.upload(samples.make_video(tmp_path / "v1.mp4", seconds=2), "uploads/again.mp4")
    fleet.wait(fleet.deliver(first)[0].task_id)
    # when the key is overwritten with a longer video and that is processed
    second = fleet.upload(samples.make_video(tmp_path / "v2.mp4", seconds=4), "uploads/again.mp4")
    row = fleet.wait(fleet.deliver(second)[0].task_id)
    # then the one videos row describes the new version
    assert row.status == "completed"
    with fleet.engine.connect() as conn:
        size = conn.execute(
            sa.select(videos.c.size_bytes).where(videos.c.id == row.video_id)
        ).scalar_one()
    assert size == second["object"]["size"] != first["object"]["size"]
