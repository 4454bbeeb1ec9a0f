"""The whole chain on a real worker process, once on PostgreSQL and once on SQLite."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest

from producer.dev import samples
from producer.events.ingest import IngestResult
from schema.metadata import as_document
from schema.status import Step
from tests.integration.conftest import BUCKET, Fleet

pytestmark = pytest.mark.integration


def _ffprobe_bytes(data: bytes, tmp_path: Path) -> dict:
    path = tmp_path / "probe.bin"
    path.write_bytes(data)
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        check=True,
        capture_output=True,
    ).stdout
    return json.loads(out)


def test_h264_upload_ends_completed_with_thumbnails_and_metadata(
    fleet: Fleet, h264_mp4: Path, tmp_path: Path
) -> None:
    # given an H.264 MP4 in the bucket
    body = fleet.upload(h264_mp4, "uploads/clip.mp4")
    # when its R2 notification reaches the producer
    [outcome] = fleet.deliver(body)
    # then the chain completes with the probe's facts and the thumbnails stored
    row = fleet.wait(outcome.task_id)
    assert row.status == "completed", row.error_message
    assert row.workflow_id == outcome.workflow_id
    assert row.retry_count == 0
    meta = as_document(row.metadata)
    probe = meta["probe"]
    assert probe["duration_s"] == pytest.approx(4.0, abs=0.1)
    assert (probe["display_width"], probe["display_height"]) == (320, 240)
    assert probe["video_codec"] == "h264"
    assert probe["audio_codec"] == "aac"
    assert probe["frame_rate"] == pytest.approx(25.0)
    assert probe["size_bytes"] == h264_mp4.stat().st_size
    assert "mp4" in probe["container"]
    keys = fleet.thumbnail_keys("thumbnails/uploads/clip.mp4/")
    assert keys == meta["thumbnails"]["keys"]
    assert len(keys) == 5
    for key in keys:
        data = fleet.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        [stream] = _ffprobe_bytes(data, tmp_path)["streams"]
        assert stream["codec_name"] == "mjpeg"
        assert stream["width"] == 160
    assert set(meta["timings_s"]) == {s.value for s in Step} | {"total"}
    with fleet.engine.connect() as conn:
        video = conn.exec_driver_sql("SELECT status, thumbnail_url FROM videos").one()
    assert video.status == "ready"
    assert video.thumbnail_url == keys[0]


def test_duplicate_notifications_create_one_task_and_one_chain_run(
    fleet: Fleet, h264_mp4: Path
) -> None:
    # given one upload whose notification arrives three times in a row and three times at once
    body = fleet.upload(h264_mp4, "uploads/dup.mp4")
    sequential = [fleet.deliver(body)[0] for _ in range(3)]
    concurrent: list = []
    threads = [
        threading.Thread(target=lambda: concurrent.extend(fleet.deliver(body))) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then exactly one delivery published a chain, and the task ran each step once
    results = [o.result for o in sequential + concurrent]
    assert results.count(IngestResult.PUBLISHED) == 1
    assert results.count(IngestResult.DUPLICATE) == 5
    row = fleet.wait(sequential[0].task_id)
    assert row.status == "completed"
    time.sleep(1.0)  # a second chain, had one been published, would have run by now
    assert len(fleet.rows()) == 1
    meta = as_document(fleet.row(row.id).metadata)
    assert meta["runs"] == {s.value: 1 for s in Step}
    assert len(fleet.thumbnail_keys("thumbnails/uploads/dup.mp4/")) == 5


def test_non_video_fails_at_once_with_a_reason(fleet: Fleet, not_a_video: Path) -> None:
    body = fleet.upload(not_a_video, "uploads/notes.mp4")
    [outcome] = fleet.deliver(body)
    row = fleet.wait(outcome.task_id)
    assert row.status == "failed"
    assert row.retry_count == 0
    assert row.error_message.startswith("validate-video: not a video: the content is no container")
    assert "X-Amz-Signature" not in row.error_message
    assert fleet.keys("thumbnails/") == []


def test_storage_outage_is_retried_until_storage_returns(fleet: Fleet, h264_mp4: Path) -> None:
    # given an uploaded video and then an S3 endpoint that stops answering
    body = fleet.upload(h264_mp4, "uploads/outage.mp4")
    fleet.s3_server.stop()
    [outcome] = fleet.deliver(body)
    # when the worker has retried at least once, storage comes back
    fleet.wait(outcome.task_id, until=frozenset({"processing", "failed"}))
    deadline = time.monotonic() + 30
    while fleet.row(outcome.task_id).retry_count < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    fleet.s3_server.start()
    # then the task completes, and its retries were counted
    row = fleet.wait(outcome.task_id)
    assert row.status == "completed", row.error_message
    assert row.retry_count >= 1


def test_storage_outage_that_outlasts_the_retries_fails_with_an_explanation(
    fleet: Fleet, h264_mp4: Path
) -> None:
    body = fleet.upload(h264_mp4, "uploads/gone.mp4")
    fleet.s3_server.stop()
    [outcome] = fleet.deliver(body)
    row = fleet.wait(outcome.task_id)
    assert row.status == "failed"
    assert row.retry_count == 3
    assert row.error_message == (
        "validate-video: gave up after 3 retries: storage error reading uploads/gone.mp4:"
        " cannot connect to the endpoint"
    )


def _pool_processes(fleet: Fleet) -> list[psutil.Process]:
    """The worker's prefork pool processes (children of its main process)."""
    tag = f"{fleet.worker_name}@"
    workers = [
        proc
        for proc in psutil.process_iter(["cmdline"])
        if any(tag in arg for arg in proc.info["cmdline"] or [])
    ]
    pids = {proc.pid for proc in workers}
    return [proc for proc in workers if proc.ppid() in pids]


def test_worker_killed_during_thumbnails_completes_exactly_once(
    fleet: Fleet, tmp_path: Path
) -> None:
    # given a video whose thumbnail step takes a while: one keyframe a minute, so the pictures
    # are decoded from the start rather than seeked to
    path = samples.make_video(tmp_path / "slow.mp4", seconds=60, size="1280x720", gop_frames=1500)
    key = "uploads/killed.mp4"
    body = fleet.upload(path, key)
    [outcome] = fleet.deliver(body)
    # when the worker's pool processes are killed with SIGKILL during the thumbnail step
    deadline = time.monotonic() + 60
    while fleet.row(outcome.task_id).step != Step.THUMBNAILS.value:
        assert time.monotonic() < deadline, "the thumbnail step never started"
        time.sleep(0.01)
    pool = _pool_processes(fleet)
    assert pool, "no pool process found"
    for proc in pool:
        proc.kill()
    # then the requeued step completes the task once
    row = fleet.wait(outcome.task_id)
    assert row.status == "completed", row.error_message
    meta = as_document(row.metadata)
    assert meta["runs"][Step.THUMBNAILS.value] == 2
    assert meta["runs"][Step.VALIDATE.value] == 1
    assert meta["runs"][Step.UPDATE.value] == 1
    assert len(fleet.thumbnail_keys(f"thumbnails/{key}/")) == 5
