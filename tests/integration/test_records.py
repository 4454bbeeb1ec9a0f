"""The worker's row bookkeeping (``workers.records``) on real SQLite and PostgreSQL, no broker.

Each test builds the rows a step would find, calls one records function the way a task does,
and reads the rows back: the steps' persistence is checked without Celery in between.
"""

from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from schema.db import make_engine
from schema.errors import DatabaseUnavailable, PermanentError, TransientError
from schema.lifecycle import now_ms
from schema.metadata import MediaInfo, TaskMetadata, Thumbnails, as_document, encode
from schema.status import Step, TaskStatus, VideoStatus
from schema.tables import tasks, videos
from workers import records

pytestmark = pytest.mark.integration


def _task(engine: Engine, *, status: TaskStatus = TaskStatus.PENDING, **values: Any) -> str:
    """Insert a task row as ingest leaves it, and return its id."""
    task_id = str(uuid.uuid4())
    now = now_ms()
    row = {
        "id": task_id,
        "video_key": "uploads/clip.mp4",
        "bucket": "video-uploads",
        "etag": "0" * 32,
        "status": status.value,
        "created_at": now,
        "updated_at": now,
        **values,
    }
    with engine.begin() as conn:
        conn.execute(sa.insert(tasks).values(row))
    return task_id


def _video(engine: Engine, *, status: VideoStatus = VideoStatus.UPLOADING) -> str:
    """Insert a videos row as the upload API creates it, and return its id."""
    video_id = str(uuid.uuid4())
    now = now_ms()
    with engine.begin() as conn:
        conn.execute(
            sa.insert(videos).values(
                id=video_id,
                r2_key="uploads/clip.mp4",
                status=status.value,
                created_at=now,
                updated_at=now,
            )
        )
    return video_id


def _begun(engine: Engine, task_id: str) -> records.TaskRow:
    """The row as the validate step holds it after ``begin_step``."""
    row = records.begin_step(engine, task_id, Step.VALIDATE)
    assert row is not None
    return row


def _row(engine: Engine, table: sa.Table, row_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.select(table).where(table.c.id == row_id)).one()


def test_begin_step_moves_a_pending_task_to_processing_and_counts_each_start(
    engine: Engine,
) -> None:
    task_id = _task(engine)

    first = records.begin_step(engine, task_id, Step.VALIDATE)
    records.begin_step(engine, task_id, Step.VALIDATE)  # a redelivery of the same step

    assert first is not None
    assert first.status is TaskStatus.PENDING
    row = _row(engine, tasks, task_id)
    assert row.status == TaskStatus.PROCESSING.value
    assert row.step == Step.VALIDATE.value
    assert as_document(row.metadata)["runs"] == {Step.VALIDATE.value: 2}


def test_begin_step_on_a_completed_task_changes_nothing(engine: Engine) -> None:
    task_id = _task(engine, status=TaskStatus.COMPLETED, metadata='{"probe": {"x": 1}}')
    before = _row(engine, tasks, task_id)

    assert records.begin_step(engine, task_id, Step.THUMBNAILS) is None

    assert _row(engine, tasks, task_id) == before


def test_a_message_for_a_missing_task_is_a_permanent_error(engine: Engine) -> None:
    with pytest.raises(PermanentError, match="not found"):
        records.begin_step(engine, "no-such-task", Step.VALIDATE)


def test_save_step_merges_what_each_step_learnt(engine: Engine) -> None:
    task_id = _task(engine, status=TaskStatus.PROCESSING, metadata='{"runs": {"a": 1}}')

    probe = MediaInfo(duration_s=4.0, width=320, height=240)
    records.save_step(engine, task_id, Step.VALIDATE, TaskMetadata(probe=probe))
    thumbs = Thumbnails(keys=["thumbnails/x/000.jpg"])
    records.save_step(engine, task_id, Step.THUMBNAILS, TaskMetadata(thumbnails=thumbs))

    row = _row(engine, tasks, task_id)
    assert row.status == TaskStatus.PROCESSING.value
    assert row.step == Step.THUMBNAILS.value
    assert as_document(row.metadata) == {
        "runs": {"a": 1},
        "probe": {"duration_s": 4.0, "width": 320, "height": 240},
        "thumbnails": {"keys": ["thumbnails/x/000.jpg"]},
    }


PROBED = TaskMetadata(probe=MediaInfo(duration_s=4.0, width=320, height=240))


def _validated(engine: Engine, task_id: str) -> str:
    """Save a probe through ``save_validated``; the task's video id afterwards."""
    records.save_validated(engine, _begun(engine, task_id), PROBED, size_bytes=101)
    video_id = _row(engine, tasks, task_id).video_id
    assert video_id is not None
    return str(video_id)


def test_direct_uploads_of_one_key_share_one_videos_row(engine: Engine) -> None:
    first = _task(engine, status=TaskStatus.PROCESSING)
    second = _task(engine, status=TaskStatus.PROCESSING, etag="1" * 32)

    ids = [_validated(engine, t) for t in (first, second)]

    assert ids[0] == ids[1]
    video = _row(engine, videos, ids[0])
    assert (video.r2_key, video.filename, video.size_bytes, video.status) == (
        "uploads/clip.mp4",
        "clip.mp4",
        101,
        VideoStatus.PROCESSING.value,
    )
    # and the probe went in with the link, in the same write
    assert as_document(_row(engine, tasks, first).metadata)["probe"]["width"] == 320


def test_an_uploaded_video_row_is_used_and_moves_to_processing(engine: Engine) -> None:
    video_id = _video(engine)
    task_id = _task(engine, status=TaskStatus.PROCESSING, video_id=video_id)

    assert _validated(engine, task_id) == video_id

    assert _row(engine, videos, video_id).status == VideoStatus.PROCESSING.value
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(videos)).scalar() == 1


def test_a_task_naming_a_missing_video_fails_as_the_design_says(engine: Engine) -> None:
    task_id = _task(engine, status=TaskStatus.PROCESSING, video_id="gone")
    row = _begun(engine, task_id)

    with pytest.raises(PermanentError, match="Video gone not found"):
        records.save_validated(engine, row, PROBED, size_bytes=101)
    # and nothing of the probe was written
    assert "probe" not in as_document(_row(engine, tasks, task_id).metadata)


def test_complete_ends_the_task_and_makes_its_video_ready_in_one_go(engine: Engine) -> None:
    video_id = _video(engine, status=VideoStatus.PROCESSING)
    task_id = _task(
        engine,
        status=TaskStatus.PROCESSING,
        video_id=video_id,
        error_message="a retry",
        metadata=encode(
            TaskMetadata(
                thumbnails=Thumbnails(keys=["thumbnails/x/000.jpg", "thumbnails/x/001.jpg"]),
                timings_s={Step.VALIDATE.value: 0.5, Step.THUMBNAILS.value: 1.0},
                runs={Step.VALIDATE.value: 1, Step.THUMBNAILS.value: 1},
            )
        ),
    )

    done = records.complete(engine, task_id, started=time.monotonic())

    task = _row(engine, tasks, task_id)
    assert (task.status, task.step, task.error_message) == (
        TaskStatus.COMPLETED.value,
        Step.UPDATE.value,
        None,
    )
    meta = as_document(task.metadata)
    assert meta["runs"] == {s.value: 1 for s in Step}
    timings = meta["timings_s"]
    assert timings["total"] == pytest.approx(1.5 + timings[Step.UPDATE.value], abs=0.002)
    video = _row(engine, videos, video_id)
    assert (video.status, video.thumbnail_url) == (
        VideoStatus.READY.value,
        "thumbnails/x/000.jpg",
    )
    # the row handed back is the completed one; completing again is a redelivery: no write
    assert done is not None
    assert done.status is TaskStatus.COMPLETED
    assert records.complete(engine, task_id, started=time.monotonic()) is None
    assert _row(engine, tasks, task_id).updated_at == task.updated_at


def test_fail_records_the_step_the_reason_and_the_class(engine: Engine) -> None:
    video_id = _video(engine, status=VideoStatus.PROCESSING)
    task_id = _task(engine, status=TaskStatus.PROCESSING, video_id=video_id)

    marked = records.fail(
        engine,
        task_id,
        step=Step.VALIDATE,
        message="validate-video: not a video",
        error_class="NotAVideo",
    )

    assert marked is not None
    assert marked.id == task_id
    task = _row(engine, tasks, task_id)
    assert (task.status, task.step, task.error_message) == (
        TaskStatus.FAILED.value,
        Step.VALIDATE.value,
        "validate-video: not a video",
    )
    assert as_document(task.metadata)["error_class"] == "NotAVideo"
    assert _row(engine, videos, video_id).status == VideoStatus.FAILED.value


def test_a_late_failure_leaves_a_completed_task_as_it_is(engine: Engine) -> None:
    video_id = _video(engine, status=VideoStatus.READY)
    task_id = _task(engine, status=TaskStatus.COMPLETED, video_id=video_id)

    marked = records.fail(engine, task_id, step=Step.UPDATE, message="too late")

    assert marked is None
    assert _row(engine, tasks, task_id).status == TaskStatus.COMPLETED.value
    assert _row(engine, videos, video_id).status == VideoStatus.READY.value


def test_each_retry_is_counted_once_with_the_latest_reason_and_class(engine: Engine) -> None:
    task_id = _task(engine, status=TaskStatus.PROCESSING, metadata='{"probe": {"x": 1}}')

    records.count_retries(
        engine, task_id, step=Step.VALIDATE, message_id="m1", retries=1, reason="storage error 1"
    )
    # the retried run reports the same retry again: it is not counted twice
    records.count_retries(engine, task_id, step=Step.VALIDATE, message_id="m1", retries=1)
    records.count_retries(
        engine,
        task_id,
        step=Step.THUMBNAILS,
        message_id="m2",
        retries=1,
        reason="storage error 2",
        error_class="StorageUnavailable",
    )

    task = _row(engine, tasks, task_id)
    assert (task.retry_count, task.error_message, task.step) == (
        2,
        "storage error 2",
        Step.THUMBNAILS.value,
    )
    metadata = as_document(task.metadata)
    assert metadata["probe"] == {"x": 1}
    assert metadata["last_retry_class"] == "StorageUnavailable"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_an_unreachable_database_is_a_retryable_error_not_a_fact_about_the_task(
    dialect: str, tmp_path: Path
) -> None:
    url = (
        f"sqlite:///{tmp_path}/no-such-dir/records.db"
        if dialect == "sqlite"
        else f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/none"
    )
    engine = make_engine(url)
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            records.begin_step(engine, "any-task", Step.VALIDATE)
    finally:
        engine.dispose()
    assert isinstance(caught.value, TransientError)
