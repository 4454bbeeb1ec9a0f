"""The D1 write-back into a real local D1 (workerd), through the official SDK, on a real worker."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from celery import Celery
from pydantic import SecretStr

from producer.events.sources.r2 import parse_r2
from producer.ops.metrics import queue_keys
from producer.ops.requeue import Request, RequeueResult, requeue_task
from schema.d1 import execute, make_d1_client, upsert
from schema.errors import D1Rejected, D1Unavailable
from schema.message import QUEUE
from schema.metadata import as_document
from schema.tables import tasks, videos
from tests.cloudflare.workerd import D1Api
from tests.integration.conftest import D1Fleet, videofleet

pytestmark = pytest.mark.integration

TASK_IN_D1 = (
    "SELECT *, typeof(created_at) AS created_type, typeof(retry_count) AS retry_type, "
    "typeof(error_message) AS error_type FROM video_processing_tasks WHERE id = ?"
)
VIDEO_IN_D1 = "SELECT *, typeof(size_bytes) AS size_type FROM videos WHERE id = ?"


def _status_is(status: str) -> object:
    return lambda rows: bool(rows) and rows[0]["status"] == status


def test_completed_task_and_its_video_reach_d1_with_integer_null_and_json_columns(
    d1_fleet: D1Fleet, d1_api: D1Api, h264_mp4: Path
) -> None:
    # given an upload processed by the worker
    body = d1_fleet.upload(h264_mp4, "uploads/mirrored.mp4")
    task_id = parse_r2(body).task_id
    d1_fleet.deliver(body)
    row = d1_fleet.wait(task_id)
    assert row.status == "completed"
    # when the mirror has run
    [task] = d1_api.wait_row(TASK_IN_D1, task_id, until=_status_is("completed"))
    [video] = d1_api.wait_row(VIDEO_IN_D1, row.video_id, until=_status_is("ready"))
    # then D1 holds the fleet's rows, INTEGER columns as integers, NULL as NULL, JSON as text
    with d1_fleet.engine.connect() as conn:
        fleet_video = conn.execute(sa.select(videos).where(videos.c.id == row.video_id)).one()
    assert task["video_key"] == "uploads/mirrored.mp4"
    assert task["updated_at"] == row.updated_at
    assert task["created_at"] == row.created_at
    assert (task["created_type"], task["retry_type"], task["error_type"]) == (
        "integer",
        "integer",
        "null",
    )
    assert task["retry_count"] == 0
    assert task["error_message"] is None
    assert json.loads(task["metadata"]) == as_document(row.metadata)
    assert len(json.loads(task["metadata"])["thumbnails"]["keys"]) == 5
    assert video["thumbnail_url"] == fleet_video.thumbnail_url is not None
    assert video["r2_key"] == "uploads/mirrored.mp4"
    assert video["size_bytes"] == h264_mp4.stat().st_size
    assert video["size_type"] == "integer"
    assert video["content_type"] is None


def test_failed_task_reaches_d1_with_its_error_message(
    d1_fleet: D1Fleet, d1_api: D1Api, not_a_video: Path
) -> None:
    # given a text file named .mp4
    body = d1_fleet.upload(not_a_video, "uploads/notes.mp4")
    task_id = parse_r2(body).task_id
    # when it is processed and fails for good
    d1_fleet.deliver(body)
    row = d1_fleet.wait(task_id)
    # then D1 shows the failure and the reason, and the video as failed
    [task] = d1_api.wait_row(TASK_IN_D1, task_id, until=_status_is("failed"))
    assert row.status == "failed"
    assert task["error_message"] == row.error_message
    assert task["error_message"].startswith("validate-video: ")
    assert json.loads(task["metadata"])["error_class"] == "NotAVideo"
    # (it failed before a videos row was attached, so D1 gets none either)
    assert row.video_id is None
    assert d1_api.query("SELECT count(*) AS n FROM videos") == [{"n": 0}]


def test_repeated_and_out_of_order_upserts_converge_on_the_newest_row(
    d1_fleet: D1Fleet, d1_api: D1Api
) -> None:
    # given two states of one task row, the newer one completed
    older = _task_row(status="processing", updated_at=1_000, retry_count=1, error="retrying: 503")
    newer = _task_row(status="completed", updated_at=2_000, retry_count=1, error=None)
    client = make_d1_client(d1_fleet.settings)
    # when the newer arrives first, then the older, then the newer again (one batch each)
    changes = [
        execute(client, d1_fleet.settings, [upsert(tasks, state)])
        for state in (newer, older, newer)
    ]
    # then only the first write changed D1, and D1 holds the newer state
    assert changes == [1, 0, 0]
    [task] = d1_api.query(TASK_IN_D1, "t-1")
    assert (task["status"], task["updated_at"], task["error_message"]) == ("completed", 2000, None)
    # and an older state first, a newer one after, ends on the newer one too
    execute(client, d1_fleet.settings, [upsert(tasks, {**older, "id": "t-2"})])
    execute(client, d1_fleet.settings, [upsert(tasks, {**newer, "id": "t-2"})])
    assert d1_api.query(TASK_IN_D1, "t-2")[0]["status"] == "completed"


def test_a_d1_outage_delays_the_mirror_and_never_fails_the_video(
    d1_fleet: D1Fleet, d1_api: D1Api, h264_mp4: Path
) -> None:
    # given D1's API answering 503
    d1_api.outage(True)
    client = make_d1_client(d1_fleet.settings)
    with pytest.raises(D1Unavailable):
        execute(client, d1_fleet.settings, [upsert(tasks, _task_row())])
    # when an upload is processed during the outage
    body = d1_fleet.upload(h264_mp4, "uploads/during-outage.mp4")
    task_id = parse_r2(body).task_id
    d1_fleet.deliver(body)
    row = d1_fleet.wait(task_id)
    # then the video completes regardless, and the mirror retries with the fleet's backoff
    assert row.status == "completed"
    _wait_log(d1_fleet, f"Task {task_id}: D1 mirror will retry")
    assert d1_api.query(TASK_IN_D1, task_id) == []
    d1_api.outage(False)
    # and once D1 answers again the rows arrive, the video ready
    [task] = d1_api.wait_row(TASK_IN_D1, task_id, until=_status_is("completed"))
    [video] = d1_api.wait_row(VIDEO_IN_D1, row.video_id, until=_status_is("ready"))
    assert task["updated_at"] == d1_fleet.row(task_id).updated_at
    assert video["thumbnail_url"] is not None
    assert d1_fleet.row(task_id).status == "completed"


def test_a_refused_token_is_a_permanent_error_not_an_outage(d1_fleet: D1Fleet) -> None:
    # given a token D1 does not accept
    settings = d1_fleet.settings.model_copy(update={"d1_api_token": SecretStr("wrong-token")})
    # when a batch is sent, then it is refused for good (403), not retried as an outage
    with pytest.raises(D1Rejected, match="403"):
        execute(make_d1_client(settings), settings, [upsert(tasks, _task_row())])


def test_d1_sync_backfills_rows_missing_from_d1(
    d1_fleet: D1Fleet, d1_api: D1Api, h264_mp4: Path
) -> None:
    # given a completed video whose D1 rows were lost
    body = d1_fleet.upload(h264_mp4, "uploads/backfilled.mp4")
    task_id = parse_r2(body).task_id
    d1_fleet.deliver(body)
    row = d1_fleet.wait(task_id)
    d1_api.wait_row(TASK_IN_D1, task_id, until=_status_is("completed"))
    d1_api.query("DELETE FROM video_processing_tasks")
    d1_api.query("DELETE FROM videos")
    # when `videofleet d1 sync --since 1h` runs
    done = videofleet("d1", "sync", "--since", "1h", env=d1_fleet.env)
    # then both rows are back, and a second sync changes nothing
    assert "video_processing_tasks: 1 rows sent, 1 changed in D1" in done.stdout
    assert "videos: 1 rows sent, 1 changed in D1" in done.stdout
    assert d1_api.query(TASK_IN_D1, task_id)[0]["status"] == "completed"
    assert d1_api.query(VIDEO_IN_D1, row.video_id)[0]["status"] == "ready"
    again = videofleet("d1", "sync", env=d1_fleet.env)
    assert "video_processing_tasks: 1 rows sent, 0 changed in D1" in again.stdout


def test_a_requeued_task_is_mirrored_when_requeued_and_again_when_it_ends(
    d1_fleet: D1Fleet, d1_api: D1Api, not_a_video: Path
) -> None:
    # given a failed task, mirrored as failed, and a worker that stopped consuming
    body = d1_fleet.upload(not_a_video, "uploads/requeued.mp4")
    task_id = parse_r2(body).task_id
    d1_fleet.deliver(body)
    d1_fleet.wait(task_id)
    d1_api.wait_row(TASK_IN_D1, task_id, until=_status_is("failed"))
    control = Celery(broker=d1_fleet.settings.broker_url, set_as_current=False)
    control.control.cancel_consumer(QUEUE, reply=True)
    try:
        # when an admin requeues it
        outcome = requeue_task(d1_fleet.engine, d1_fleet.publisher, task_id, Request(by="ann"))
        assert outcome.result is RequeueResult.REQUEUED
        # then the chain and a D1 mirror of the pending row wait on the queue
        with d1_fleet.broker.client() as client:
            messages = [m for key in queue_keys(QUEUE) for m in client.lrange(key, 0, -1)]
            queued = [json.loads(m)["headers"] for m in messages]
        assert sorted(h["task"] for h in queued) == [
            "videofleet.mirror_to_d1",
            "videofleet.validate_video",
        ]
        [mirror] = [h for h in queued if h["task"] == "videofleet.mirror_to_d1"]
        assert task_id in mirror["argsrepr"]
    finally:
        control.control.add_consumer(QUEUE, reply=True)
        control.close()
    # and once the rerun ends, D1 holds the newest row: failed again, with the requeue recorded
    row = d1_fleet.wait(task_id)
    [task] = d1_api.wait_row(
        TASK_IN_D1,
        task_id,
        until=lambda rows: bool(rows) and rows[0]["updated_at"] == row.updated_at,
    )
    assert task["status"] == "failed"
    assert len(json.loads(task["metadata"])["requeues"]) == 1


def _task_row(
    *,
    status: str = "pending",
    updated_at: int = 1_000,
    retry_count: int = 0,
    error: str | None = None,
) -> dict[str, object]:
    return {
        "id": "t-1",
        "video_key": "uploads/t.mp4",
        "status": status,
        "workflow_id": "w-1",
        "created_at": 500,
        "updated_at": updated_at,
        "metadata": json.dumps({"runs": {"validate-video": 1}}),
        "error_message": error,
        "retry_count": retry_count,
        "bucket": "b",
        "etag": "e",
        "video_id": None,
        "step": "validate-video",
    }


def _wait_log(fleet: D1Fleet, text: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in fleet.worker_log.read_text():
        if time.monotonic() > deadline:
            pytest.fail(f"worker never logged {text!r}:\n{fleet.worker_log.read_text()[-3000:]}")
        time.sleep(0.2)
