"""Ingest with every source, in batches, with deletes: real worker, database, broker and S3."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from producer.events.ingest import IngestOutcome, IngestResult, ingest
from producer.events.publish import ChainPublisher
from producer.events.rules import EventRules
from producer.events.sources import parse_body
from schema.errors import BrokerUnavailable, PartialPublish
from schema.lanes import Lane
from schema.lifecycle import now_ms
from schema.metadata import as_document
from schema.settings import DEFAULT_INGEST_EXTENSIONS
from schema.status import Step
from schema.tables import videos
from tests.factories import minio_body, r2_body, s3_body
from tests.integration.conftest import BUCKET, Fleet

pytestmark = pytest.mark.integration

CANCELLED = "cancelled: the object was deleted"


def deliver(fleet: Fleet, *bodies: Any) -> list[IngestOutcome]:
    """What every transport does: parse each body, ingest the batch with the fleet's settings."""
    events = [e for body in bodies for e in parse_body(body)]
    return ingest(
        fleet.engine,
        fleet.publisher,
        events,
        rules=EventRules.from_settings(fleet.settings),
        storage=fleet.s3,
    )


def assert_ran_once(fleet: Fleet, task_id: str, steps: tuple[Step, ...]) -> Any:
    row = fleet.wait(task_id)
    assert as_document(row.metadata)["runs"] == {s.value: 1 for s in steps}
    return row


def test_batch_with_duplicates_inside_and_across_batches_makes_one_row_and_chain_each(
    fleet: Fleet, h264_mp4: Path
) -> None:
    # given three uploads, each reported twice within one batch
    bodies = [fleet.upload(h264_mp4, f"uploads/batch-{i}.mp4") for i in range(3)]
    batch = [bodies[0], bodies[1], bodies[0], bodies[2], bodies[1]]
    # when the batch arrives, and then arrives again
    first = deliver(fleet, *batch)
    second = deliver(fleet, *batch)
    # then each object has one row, one published chain, and each step ran once
    assert [o.result for o in first] == [
        IngestResult.PUBLISHED,
        IngestResult.PUBLISHED,
        IngestResult.DUPLICATE,
        IngestResult.PUBLISHED,
        IngestResult.DUPLICATE,
    ]
    assert {o.result for o in second} == {IngestResult.DUPLICATE}
    assert len({o.workflow_id for o in first if o.workflow_id}) == 3
    for outcome in first[:2] + first[3:4]:
        row = assert_ran_once(fleet, outcome.task_id, tuple(Step))
        assert row.status == "completed"
        assert row.workflow_id == outcome.workflow_id
    assert len(fleet.rows()) == 3


def test_concurrent_identical_batches_publish_each_object_once(
    fleet: Fleet, not_a_video: Path
) -> None:
    # given four deliveries of the same batch of five objects, at the same time
    bodies = [fleet.upload(not_a_video, f"uploads/race-{i}.mp4") for i in range(5)]
    outcomes: list[IngestOutcome] = []
    lock = threading.Lock()

    def run() -> None:
        result = deliver(fleet, *bodies)
        with lock:
            outcomes.extend(result)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then each object was published exactly once and its chain ran once
    published = [o for o in outcomes if o.result is IngestResult.PUBLISHED]
    assert len(outcomes) == 20
    assert sorted(o.key for o in published) == [f"uploads/race-{i}.mp4" for i in range(5)]
    for outcome in published:
        assert assert_ran_once(fleet, outcome.task_id, (Step.VALIDATE,)).status == "failed"
    assert len(fleet.rows()) == 5


def test_the_same_upload_reported_by_r2_s3_and_minio_is_one_task(
    fleet: Fleet, h264_mp4: Path
) -> None:
    # given one upload, reported by each source in its own format
    key = "uploads/three sources+1 \u00e9.mp4"
    r2 = fleet.upload(h264_mp4, key)
    size, etag = r2["object"]["size"], r2["object"]["eTag"]
    s3 = s3_body(bucket=BUCKET, key=key, size=size, etag=f'"{etag}"')
    minio = minio_body(bucket=BUCKET, key=key, size=size, etag=etag)
    # when the notifications arrive one after another
    outcomes = [deliver(fleet, body)[0] for body in (s3, r2, minio)]
    # then the first made the task and the others were duplicates of it
    assert [o.result for o in outcomes] == [
        IngestResult.PUBLISHED,
        IngestResult.DUPLICATE,
        IngestResult.DUPLICATE,
    ]
    assert len({o.task_id for o in outcomes}) == 1
    row = assert_ran_once(fleet, outcomes[0].task_id, tuple(Step))
    assert (row.status, row.video_key) == ("completed", key)
    assert len(fleet.rows()) == 1


def test_filtered_events_are_ignored_with_a_reason_and_leave_no_row(fleet: Fleet) -> None:
    outcomes = deliver(
        fleet,
        r2_body(bucket=BUCKET, key="thumbnails/uploads/a.mp4/000.jpg"),
        s3_body(bucket=BUCKET, key="uploads/notes.txt"),
        minio_body(bucket=BUCKET, key="uploads/huge.mp4", size=6 * 1024**3),
    )
    assert [o.result for o in outcomes] == [IngestResult.IGNORED] * 3
    assert [o.reason for o in outcomes] == [
        "under the thumbnails prefix 'thumbnails/'",
        f"extension not one of {', '.join(DEFAULT_INGEST_EXTENSIONS)}",
        "6442450944 bytes is above the maximum of 5368709120",
    ]
    assert fleet.rows() == []


def _put_thumbnails(fleet: Fleet, key: str, count: int) -> None:
    for i in range(count):
        fleet.s3.put_object(Bucket=BUCKET, Key=f"thumbnails/{key}/{i:03d}.jpg", Body=b"jpeg")


def _video_status(fleet: Fleet, key: str) -> str:
    with fleet.engine.connect() as conn:
        return str(conn.execute(sa.select(videos.c.status).where(videos.c.r2_key == key)).scalar())


def test_delete_before_the_task_starts_cancels_it_and_removes_the_thumbnails(
    fleet: Fleet, h264_mp4: Path
) -> None:
    # given an upload whose task is pending (its chain could not be published yet), a videos
    # row, thumbnails of an earlier version, and thumbnails of a neighbouring key
    key = "uploads/deleted-early.mp4"
    body = fleet.upload(h264_mp4, key)
    down = ChainPublisher(fleet.settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"}))
    with down, pytest.raises(BrokerUnavailable):
        ingest(fleet.engine, down, parse_body(body))
    with fleet.engine.begin() as conn:
        now = now_ms()
        conn.execute(
            sa.insert(videos).values(
                id="v-early", r2_key=key, status="uploading", created_at=now, updated_at=now
            )
        )
    _put_thumbnails(fleet, key, 3)
    _put_thumbnails(fleet, key + ".bak", 1)
    [row] = fleet.rows()
    assert (row.status, row.workflow_id) == ("pending", None)
    # when the object is deleted and R2 reports it
    fleet.s3.delete_object(Bucket=BUCKET, Key=key)
    delete = r2_body(bucket=BUCKET, key=key, size=None, etag=None, action="DeleteObject")
    [outcome] = deliver(fleet, delete)
    # then the task is cancelled, the video deleted, and only this key's thumbnails removed
    assert outcome.result is IngestResult.DELETED
    assert outcome.reason == (
        "video rows deleted 1, pending tasks cancelled 1, thumbnails removed 3"
    )
    row = fleet.row(row.id)
    assert (row.status, row.error_message) == ("failed", CANCELLED)
    assert _video_status(fleet, key) == "deleted"
    assert fleet.keys("thumbnails/") == [f"thumbnails/{key}.bak/000.jpg"]
    # and delivering the delete again, or the old create, changes nothing
    [again] = deliver(fleet, delete)
    assert (again.result, again.reason) == (
        IngestResult.DELETED,
        "video rows deleted 0, pending tasks cancelled 0, thumbnails removed 0",
    )
    [create_again] = deliver(fleet, body)
    assert create_again.result is IngestResult.DUPLICATE
    assert fleet.row(row.id).status == "failed"


def test_delete_after_completion_removes_the_thumbnails_and_keeps_the_task(
    fleet: Fleet, h264_mp4: Path
) -> None:
    # given a processed upload with its thumbnails
    key = "uploads/deleted-late.mp4"
    [outcome] = deliver(fleet, fleet.upload(h264_mp4, key))
    assert fleet.wait(outcome.task_id).status == "completed"
    assert len(fleet.thumbnail_keys(f"thumbnails/{key}/")) == 5
    # when S3 reports the object removed
    fleet.s3.delete_object(Bucket=BUCKET, Key=key)
    gone = s3_body(bucket=BUCKET, key=key, size=None, etag=None, event_name="ObjectRemoved:Delete")
    deleted, repeated = deliver(fleet, gone, gone)
    # then the thumbnails are gone, the video is deleted, the finished task keeps its result
    assert deleted.result is IngestResult.DELETED
    assert (repeated.result, repeated.reason) == (IngestResult.DUPLICATE, "same delete above")
    assert fleet.keys("thumbnails/") == []
    assert _video_status(fleet, key) == "deleted"
    assert fleet.row(outcome.task_id).status == "completed"


def test_a_delete_delivered_after_a_reupload_is_stale_and_ignored(
    fleet: Fleet, h264_mp4: Path
) -> None:
    # given an object that was deleted and uploaded again, whose delete notification comes late
    key = "uploads/reuploaded.mp4"
    [outcome] = deliver(fleet, fleet.upload(h264_mp4, key))
    fleet.wait(outcome.task_id)
    delete = minio_body(
        bucket=BUCKET, key=key, size=None, etag=None, event_name="s3:ObjectRemoved:Delete"
    )
    # when the delete arrives
    [late] = deliver(fleet, delete)
    # then nothing of the current object is touched
    assert (late.result, late.reason) == (
        IngestResult.IGNORED,
        "stale delete: an object exists under the key again",
    )
    assert len(fleet.thumbnail_keys(f"thumbnails/{key}/")) == 5
    assert _video_status(fleet, key) == "ready"


def test_a_batch_whose_publish_failed_is_published_whole_by_the_next_delivery(
    fleet: Fleet, not_a_video: Path
) -> None:
    bodies = [fleet.upload(not_a_video, f"uploads/retry-{i}.mp4") for i in range(3)]
    down = ChainPublisher(fleet.settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"}))
    with down, pytest.raises(BrokerUnavailable):
        ingest(fleet.engine, down, [e for b in bodies for e in parse_body(b)])
    assert {(r.status, r.workflow_id) for r in fleet.rows()} == {("pending", None)}
    outcomes = deliver(fleet, *bodies)
    assert [o.result for o in outcomes] == [IngestResult.PUBLISHED] * 3
    for outcome in outcomes:
        assert assert_ran_once(fleet, outcome.task_id, (Step.VALIDATE,)).status == "failed"


class BrokerDiesMidBatch:
    """The real publisher, cut off after ``survive`` chains as if the broker went away."""

    def __init__(self, real: ChainPublisher, survive: int) -> None:
        self.real = real
        self.survive = survive

    def publish_many(
        self,
        chains: Sequence[tuple[str, str]],
        *,
        start: Step = Step.VALIDATE,
        lanes: Mapping[str, Lane] | None = None,
    ) -> None:
        sent = list(chains[: self.survive])
        self.real.publish_many(sent, start=start, lanes=lanes)
        raise PartialPublish(
            "broker unavailable: connection reset", published=tuple(t for t, _ in sent)
        )


def test_a_broker_failure_mid_batch_releases_only_the_chains_not_sent(
    fleet: Fleet, not_a_video: Path
) -> None:
    # given a batch of five whose publishing breaks off after two chains
    bodies = [fleet.upload(not_a_video, f"uploads/half-{i}.mp4") for i in range(5)]
    with pytest.raises(BrokerUnavailable):
        ingest(
            fleet.engine,
            BrokerDiesMidBatch(fleet.publisher, survive=2),
            [e for b in bodies for e in parse_body(b)],
        )
    # then the two sent keep their claims and run; the three others are released
    claimed = [r for r in fleet.rows() if r.workflow_id is not None]
    assert len(claimed) == 2
    assert sum(r.workflow_id is None and r.status == "pending" for r in fleet.rows()) == 3
    # when the batch is delivered again, exactly the three unsent are published
    outcomes = deliver(fleet, *bodies)
    assert sorted(o.result for o in outcomes) == sorted(
        [IngestResult.DUPLICATE] * 2 + [IngestResult.PUBLISHED] * 3
    )
    assert {o.task_id for o in outcomes if o.result is IngestResult.DUPLICATE} == {
        r.id for r in claimed
    }
    for outcome in outcomes:
        assert assert_ran_once(fleet, outcome.task_id, (Step.VALIDATE,)).status == "failed"
