"""What one video costs the database and the store: one write per step boundary, no HEAD.

The three steps run in-process, as the Celery tasks call them, against a real database (SQLite
and PostgreSQL) and moto's S3 behind the counting proxy. SQLAlchemy's events count the
transactions that wrote; the proxy counts the requests the store was asked, by method.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from bench.steps import pending_task
from schema.changes import ChangeMarks
from schema.errors import NotAVideo, Superseded
from schema.metadata import TaskMetadata
from schema.settings import Settings
from schema.status import Step, TaskStatus, VideoStatus
from schema.tables import tasks, videos
from tests.fleet import BUCKET
from tests.integration.media_bucket import Bucket
from workers import steps
from workers.context import Deps

pytestmark = pytest.mark.integration

THUMBNAILS = 3


@dataclass
class Writes:
    """Committed transactions that wrote something."""

    count: int = 0

    def take(self) -> int:
        taken, self.count = self.count, 0
        return taken


@pytest.fixture
def writes(engine: Engine) -> Iterator[Writes]:
    counted = Writes()

    def flag(conn: Connection, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().split(None, 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
            conn.info["wrote"] = True

    def commit(conn: Connection) -> None:
        if conn.info.pop("wrote", False):
            counted.count += 1

    event.listen(engine, "before_cursor_execute", flag)
    event.listen(engine, "commit", commit)
    yield counted
    event.remove(engine, "before_cursor_execute", flag)
    event.remove(engine, "commit", commit)


@pytest.fixture
def deps(engine: Engine, bucket: Bucket) -> Deps:
    settings = Settings(
        database_url=str(engine.url),
        s3_endpoint_url=bucket.s3.meta.endpoint_url,
        s3_bucket=BUCKET,
        thumbnail_count=THUMBNAILS,
        status_cache_enabled=False,
    )
    return Deps(settings, engine, bucket.s3, ChangeMarks(settings))


def _task(engine: Engine, bucket: Bucket, key: str) -> str:
    """The row ingest leaves for the object now under ``key``: pending, naming its version."""
    etag = bucket.s3.head_object(Bucket=BUCKET, Key=key)["ETag"]
    return pending_task(engine, bucket=BUCKET, key=key, etag=etag.strip('"'))


def _metadata(engine: Engine, task_id: str) -> TaskMetadata:
    with engine.connect() as conn:
        meta = conn.execute(sa.select(tasks.c.metadata).where(tasks.c.id == task_id)).scalar_one()
    assert isinstance(meta, TaskMetadata)
    return meta


def test_a_video_costs_one_write_per_step_boundary_and_no_head(
    engine: Engine, bucket: Bucket, deps: Deps, writes: Writes, h264_mp4: Path
) -> None:
    bucket.put(h264_mp4, "uploads/trips.mp4")
    task_id = _task(engine, bucket, "uploads/trips.mp4")
    writes.take()
    bucket.proxy.reset()

    # validate: its start and its end (the probe and the video link together); the size and
    # the version come from the probe's first range request
    assert steps.validate(deps, task_id)
    meta = _metadata(engine, task_id)
    assert meta.reads is not None
    assert writes.take() == 2
    assert dict(bucket.proxy.methods) == {"GET": meta.reads.probe_requests}

    # thumbnails: start and end; one PUT per derived object, no HEAD
    bucket.proxy.reset()
    assert steps.thumbnails(deps, task_id)
    meta = _metadata(engine, task_id)
    assert meta.thumbnails is not None
    assert meta.storyboard is not None
    assert meta.reads is not None
    assert writes.take() == 2
    assert dict(bucket.proxy.methods) == {
        "GET": meta.reads.requests,
        "PUT": THUMBNAILS + 2,  # the thumbnails, the storyboard sprite and its WebVTT map
    }

    # update: one write, nothing asked of the store
    bucket.proxy.reset()
    assert steps.update(deps, task_id)
    assert writes.take() == 1
    assert sum(bucket.proxy.methods.values()) == 0

    # and the row records all it did before
    meta = _metadata(engine, task_id)
    assert meta.runs == {s.value: 1 for s in Step}
    assert set(meta.timings_s) == {*(s.value for s in Step), "total"}
    assert set(meta.media_s) == {"probe", "capture"}
    assert meta.probe is not None
    assert meta.probe.width == 320
    with engine.connect() as conn:
        task = conn.execute(sa.select(tasks).where(tasks.c.id == task_id)).one()
        video = conn.execute(sa.select(videos).where(videos.c.id == task.video_id)).one()
    assert (task.status, task.step) == (TaskStatus.COMPLETED.value, Step.UPDATE.value)
    assert (video.status, video.size_bytes) == (VideoStatus.READY.value, h264_mp4.stat().st_size)
    assert video.thumbnail_url == meta.thumbnails.poster
    # a redelivered update finds the task completed and writes nothing
    assert not steps.update(deps, task_id)
    assert writes.take() == 0


def test_an_overwritten_key_is_refused_from_the_probe_s_first_read(
    engine: Engine, bucket: Bucket, deps: Deps, writes: Writes, h264_mp4: Path, tmp_path: Path
) -> None:
    key = "uploads/overwritten.mp4"
    bucket.put(h264_mp4, key)
    task_id = _task(engine, bucket, key)
    other = tmp_path / "other.mp4"
    other.write_bytes(h264_mp4.read_bytes() + b"\0")
    bucket.put(other, key)
    bucket.proxy.reset()

    with pytest.raises(Superseded, match=r"superseded: uploads/overwritten\.mp4 now holds"):
        steps.validate(deps, task_id)

    assert dict(bucket.proxy.methods) == {"GET": 1}
    assert _metadata(engine, task_id).probe is None


def test_a_key_overwritten_between_the_steps_is_refused_by_the_thumbnails(
    engine: Engine, bucket: Bucket, deps: Deps, h264_mp4: Path, tmp_path: Path
) -> None:
    key = "uploads/overwritten-later.mp4"
    bucket.put(h264_mp4, key)
    task_id = _task(engine, bucket, key)
    assert steps.validate(deps, task_id)
    other = tmp_path / "other.mp4"
    other.write_bytes(h264_mp4.read_bytes() + b"\0")
    bucket.put(other, key)

    with pytest.raises(Superseded):
        steps.thumbnails(deps, task_id)

    assert _metadata(engine, task_id).thumbnails is None


def test_an_empty_object_is_not_a_video_without_a_head(
    engine: Engine, bucket: Bucket, deps: Deps, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    bucket.put(empty, "uploads/empty.mp4")
    task_id = _task(engine, bucket, "uploads/empty.mp4")
    bucket.proxy.reset()

    with pytest.raises(NotAVideo, match=r"the object is empty \(0 bytes\)"):
        steps.validate(deps, task_id)

    assert dict(bucket.proxy.methods) == {"GET": 1}
