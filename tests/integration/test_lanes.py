"""Priority lanes on a real Redis broker and a real single-process worker (``schema.lanes``).

Each test publishes a backlog to a private ``redis-server`` (the ``broker`` fixture) before
any worker consumes it, then starts one worker process with one pool process on it, so the order
in which the worker takes messages is the broker's order alone. The database and the bucket are
the session fleet's.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from producer.dev import localstack
from producer.events.ingest import Result, ingest
from producer.events.publish import ChainPublisher
from producer.events.sources.r2 import parse_r2
from producer.ops.metrics import FleetCollector, queue_keys
from schema.lanes import Lane
from schema.lifecycle import now_ms
from schema.message import QUEUE, ObjectEvent
from schema.settings import Settings
from schema.tables import tasks, videos
from tests.integration.conftest import Fleet, RedisServer

pytestmark = pytest.mark.integration

BULK_CHAINS = 5
BACKLOG_CHAINS = 4
POLL_S = 0.02
DRAIN_TIMEOUT_S = 120.0


@pytest.fixture
def own(fleet: Fleet, broker: RedisServer) -> tuple[Settings, dict[str, str]]:
    """The fleet's database and bucket with the private broker: settings and worker env."""
    env = {**fleet.env, "BROKER_URL": broker.url}
    return fleet.settings.model_copy(update={"broker_url": broker.url}), env


def _events(fleet: Fleet, clip: Path, prefix: str, count: int) -> list[ObjectEvent]:
    return [parse_r2(fleet.upload(clip, f"{prefix}/{i:02d}.mp4")) for i in range(count)]


def _publish(settings: Settings, fleet: Fleet, events: list[ObjectEvent], lane: Lane) -> None:
    with ChainPublisher(settings) as publisher:
        outcomes = ingest(fleet.engine, publisher, events, lane=lane)
    assert [o.result for o in outcomes] == [Result.PUBLISHED] * len(events)


def _statuses(fleet: Fleet) -> dict[str, str]:
    with fleet.engine.connect() as conn:
        return dict(conn.execute(sa.select(tasks.c.id, tasks.c.status)).tuples().all())


@contextmanager
def _one_process_worker(env: dict[str, str], logdir: Path) -> Iterator[None]:
    """A worker with one pool process, starting: watch the rows from before it takes a message."""
    with ExitStack() as stack:
        localstack.start_worker(stack, logdir=logdir, name="lanes", concurrency=1, env=env)
        yield


def _watch_until_ended(fleet: Fleet, count: int) -> list[dict[str, str]]:
    """Snapshots of every row's status, every ``POLL_S``, until ``count`` rows completed."""
    snapshots: list[dict[str, str]] = []
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        snapshot = _statuses(fleet)
        if not snapshots:
            assert set(snapshot.values()) == {"pending"}, "the worker began before the watch"
        snapshots.append(snapshot)
        if sum(s == "completed" for s in snapshot.values()) == count:
            return snapshots
        assert "failed" not in snapshot.values(), snapshot
        time.sleep(POLL_S)
    pytest.fail(f"not all {count} chains completed in {DRAIN_TIMEOUT_S} s: {snapshots[-1]}")


def _first_time(snapshots: list[dict[str, str]], task_id: str, status: str) -> int:
    return next(i for i, s in enumerate(snapshots) if s.get(task_id) == status)


def test_an_upload_api_video_jumps_a_bulk_backlog(
    fleet: Fleet, own: tuple[Settings, dict[str, str]], h264_mp4: Path, tmp_path: Path
) -> None:
    settings, env = own
    # given a backlog of bulk chains (the poller's) waiting on the broker
    bulk = _events(fleet, h264_mp4, "backfill", BULK_CHAINS)
    _publish(settings, fleet, bulk, Lane.BULK)
    # and, published after them, a video the upload API created (a videos row with an owner)
    [upload] = _events(fleet, h264_mp4, "uploads/person", 1)
    now = now_ms()
    with fleet.engine.begin() as conn:
        conn.execute(
            sa.insert(videos).values(
                id="v-person",
                r2_key=upload.key,
                owner="ann@example.com",
                status="uploading",
                created_at=now,
                updated_at=now,
            )
        )
    _publish(settings, fleet, [upload], Lane.NORMAL)
    # when one worker process drains the queue
    with _one_process_worker(env, tmp_path):
        snapshots = _watch_until_ended(fleet, BULK_CHAINS + 1)
    # then the upload completed first, before any bulk video
    done = _first_time(snapshots, upload.task_id, "completed")
    assert [e.task_id for e in bulk if snapshots[done].get(e.task_id) == "completed"] == []
    # and no bulk video had started by then
    assert {snapshot[e.task_id] for snapshot in snapshots[:done] for e in bulk} <= {"pending"}


def test_a_started_chain_finishes_before_the_backlog_starts(
    fleet: Fleet, own: tuple[Settings, dict[str, str]], h264_mp4: Path, tmp_path: Path
) -> None:
    settings, env = own
    # given a backlog of new chains in one lane
    backlog = _events(fleet, h264_mp4, "backlog", BACKLOG_CHAINS)
    _publish(settings, fleet, backlog, Lane.BULK)
    # when one worker process drains it
    with _one_process_worker(env, tmp_path):
        snapshots = _watch_until_ended(fleet, BACKLOG_CHAINS)
    # then a chain whose first step ran had its next steps run before any other chain's first
    # step: never were two videos under way at once (FIFO runs every validate first)
    assert max(list(s.values()).count("processing") for s in snapshots) == 1
    # and the chains completed in the order they were published (FIFO among equals; a batch is
    # published in task id order)
    ids = [e.task_id for e in backlog]
    assert sorted(ids, key=lambda i: _first_time(snapshots, i, "completed")) == sorted(ids)


def test_each_step_carries_its_lanes_priority_and_metrics_count_depth_per_lane(
    fleet: Fleet, broker: RedisServer, own: tuple[Settings, dict[str, str]]
) -> None:
    settings, _ = own
    lanes = {"t-upload": Lane.INTERACTIVE, "t-hook": Lane.NORMAL}
    # when chains of each lane are published (no worker consumes this broker)
    with ChainPublisher(settings) as publisher:
        publisher.publish_many(
            [("t-upload", "w-upload"), ("t-hook", "w-hook"), ("t-poll", "w-poll")], lanes=lanes
        )
    # then each first step waits in its priority list, its later steps' priorities riding along
    with broker.client() as client:
        waiting = {key: client.lrange(key, 0, -1) for key in queue_keys(QUEUE)}
        collector = FleetCollector(fleet.engine, client, window_s=60)
        samples = {
            (s.name, frozenset(s.labels.items())): s.value
            for family in collector.collect()
            for s in family.samples
        }
    found = {}
    for key, messages in waiting.items():
        for raw in messages:
            message = json.loads(raw)
            [task_id], _, embed = json.loads(base64.b64decode(message["body"]))
            later = [(s["task"], s["options"]["priority"]) for s in reversed(embed["chain"])]
            found[task_id] = (key, message["properties"]["priority"], later)
    steps = ("videofleet.generate_thumbnails", "videofleet.update_database")
    assert found == {
        "t-upload": (f"{QUEUE}\x06\x163", 3, list(zip(steps, (2, 1), strict=True))),
        "t-hook": (f"{QUEUE}\x06\x166", 6, list(zip(steps, (5, 4), strict=True))),
        "t-poll": (f"{QUEUE}\x06\x166", 6, list(zip(steps, (5, 4), strict=True))),
    }
    lane_depth = {
        dict(labels)["lane"]: value
        for (name, labels), value in samples.items()
        if name == "videofleet_queue_lane_messages"
    }
    assert lane_depth == {"none": 0, "interactive": 1, "normal": 2, "bulk": 0}
    assert samples[("videofleet_queue_messages", frozenset({("queue", QUEUE)}))] == 3
