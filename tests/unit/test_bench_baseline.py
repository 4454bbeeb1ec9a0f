"""The baseline bench's own logic: what it posts to the webhook and how it reads a drain."""

from __future__ import annotations

import json

import sqlalchemy as sa

from bench.baseline import Drain, read_drain, webhook_batches
from bench.fleetstack import r2_notification
from producer.events.sources.r2 import parse_r2
from producer.web.envelope import unpack
from schema.tables import metadata_obj, tasks


def test_webhook_batches_are_queue_consumer_batches_the_webhook_unpacks() -> None:
    notifications = [
        r2_notification(f"b/{i:03d}.mp4", size=10, etag=f"{i:032x}") for i in range(250)
    ]
    batches = list(webhook_batches(notifications))
    assert [len(b["messages"]) for b in batches] == [100, 100, 50]
    keys = []
    for batch in batches:
        unpacked = unpack(batch, json.dumps(batch).encode())
        assert unpacked.batch
        assert len({m.message_id for m in unpacked.messages}) == len(unpacked.messages)
        keys += [parse_r2(m.body).key for m in unpacked.messages]
    assert keys == [f"b/{i:03d}.mp4" for i in range(250)]


def test_a_drain_counts_only_ended_rows_under_its_prefix() -> None:
    engine = sa.create_engine("sqlite://")
    metadata_obj.create_all(engine)
    rows = [
        ("a", "today-0/1.mp4", "completed", 1_500),
        ("b", "today-0/2.mp4", "completed", 4_000),
        ("c", "today-0/3.mp4", "failed", 2_000),
        ("d", "today-0/4.mp4", "processing", 9_000),
        ("e", "baseline-0/1.mp4", "completed", 99_000),
    ]
    with engine.begin() as conn:
        for task_id, key, status, updated in rows:
            conn.execute(
                tasks.insert().values(
                    id=task_id, video_key=key, status=status, created_at=1, updated_at=updated
                )
            )
    drain = read_drain(engine, "today-0/", videos=4, started_ms=1_000)
    assert sorted(drain.completed_ms) == [1_500, 4_000]
    assert drain.failed == 1
    assert drain.first_s == 0.5
    assert drain.drain_s == 3.0
    assert Drain(2, 0, [60_000, 30_000], failed=0).drain_s == 60.0
