"""Real faults on RabbitMQ: a worker killed, the broker killed, a message that kills workers.

Every test runs its own worker processes on its own broker (a fresh virtual host of the shared
RabbitMQ, or a private node that can be killed), its own PostgreSQL database and the session's
S3 server, and counts what was lost, failed, run twice or dead-lettered.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psutil
import pytest
from celery import Celery
from click.testing import CliRunner
from kombu import Connection
from sqlalchemy.engine import Engine

from producer.cli import main
from producer.dev import localstack, samples
from producer.events.publish import ChainPublisher
from producer.ops.metrics import render
from producer.ops.rabbitdepth import read_depth
from schema.broker import DEAD_LETTER_ERROR_CLASS
from schema.message import QUEUE
from schema.metadata import as_document
from schema.settings import Settings
from schema.status import Step
from tests.faults.rabbitnode import RabbitNode
from tests.fleet import (
    BUCKET,
    RABBITMQ_VHOST,
    TEST_TUNING,
    Fleet,
    S3Server,
    _clean,
    _wait_worker_ready,
    own_database,
    rabbitmq_url,
    reset_database,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(420)]

# Long enough that a Redis broker would hold a dead worker's message far beyond these tests.
VISIBILITY_TIMEOUT_S = "3600"
REDELIVERY_BOUND_S = 30.0
POISON_DELIVERY_LIMIT = 2


@pytest.fixture(scope="module")
def faults_db(postgres_url: str) -> Iterator[str]:
    url = own_database(postgres_url, "rabbitfaults")
    reset_database(url).dispose()
    return url


@pytest.fixture
def vhost() -> Iterator[str]:
    """A virtual host of the shared RabbitMQ for this test alone, removed after it.

    A fresh name each time: kombu pools connections by URL, and one into a vhost deleted under
    it is reset by the broker.
    """
    name = f"{RABBITMQ_VHOST}-faults-{uuid.uuid4().hex[:8]}"
    yield rabbitmq_url(name)
    subprocess.run(["rabbitmqctl", "--quiet", "delete_vhost", name], capture_output=True)


@pytest.fixture
def node() -> Iterator[RabbitNode]:
    """A private RabbitMQ node this test may kill (its user must reach the directory: /tmp)."""
    with tempfile.TemporaryDirectory(prefix="videofleet-rabbit-") as base:
        node = RabbitNode(Path(base))
        try:
            node.start()
        except localstack.StackError as exc:
            pytest.fail(f"{exc}; log:\n{node.log_tail()}")
        yield node
        node.stop()


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


class Fleets:
    """Starts workers on one broker and database; the first call also gives the producer."""

    def __init__(
        self, stack: ExitStack, *, broker_url: str, db_url: str, s3: S3Server, logdir: Path
    ) -> None:
        self.env = {
            **os.environ,
            **TEST_TUNING,
            "VISIBILITY_TIMEOUT_S": VISIBILITY_TIMEOUT_S,
            "DATABASE_URL": db_url,
            "BROKER_URL": broker_url,
            "S3_ENDPOINT_URL": s3.url,
            "S3_BUCKET": BUCKET,
        }
        self._stack, self._s3, self._logdir = stack, s3, logdir

    def settings(self) -> Settings:
        fields = Settings.model_fields
        return Settings(**{k.lower(): v for k, v in self.env.items() if k.lower() in fields})

    def worker(self, name: str, *, app: str = "workers", concurrency: int = 1) -> Any:
        proc = localstack.start_worker(
            self._stack,
            logdir=self._logdir,
            name=name,
            env=self.env,
            app=app,
            concurrency=concurrency,
        )
        _wait_worker_ready(self.env["BROKER_URL"], f"{name}@", self._logdir / f"{name}.log")
        return proc

    def fleet(self, engine: Engine, name: str) -> Fleet:
        settings = self.settings()
        publisher = self._stack.enter_context(ChainPublisher(settings))
        log = self._logdir / f"{name}.log"
        fleet = Fleet(settings, engine, publisher, self.env, log, self._s3, name)
        _clean(fleet)
        return fleet


@pytest.fixture
def engine(faults_db: str) -> Iterator[Engine]:
    engine = reset_database(faults_db)
    yield engine
    engine.dispose()


def _runs(fleet: Fleet, task_id: str) -> dict[str, int]:
    return dict(as_document(fleet.row(task_id).metadata).get("runs") or {})


def test_worker_main_process_killed_its_step_runs_again_at_once_exactly_once(
    stack: ExitStack,
    vhost: str,
    engine: Engine,
    s3_server: S3Server,
    tmp_path: Path,
) -> None:
    fleets = Fleets(stack, broker_url=vhost, db_url=str(engine.url), s3=s3_server, logdir=tmp_path)
    # given a second worker, not consuming yet, and a first one
    fleets.worker("rabbit-survivor")
    control = stack.enter_context(Celery(broker=vhost, set_as_current=False))
    survivor = [f"rabbit-survivor@{socket.gethostname()}"]
    assert control.control.cancel_consumer(QUEUE, destination=survivor, reply=True)
    doomed = fleets.worker("rabbit-doomed")
    fleet = fleets.fleet(engine, "rabbit-doomed")
    # and a video whose thumbnail step takes a while, running on the first worker
    path = samples.make_video(tmp_path / "slow.mp4", seconds=60, size="1280x720", gop_frames=1500)
    [outcome] = fleet.deliver(fleet.upload(path, "uploads/killed-main.mp4"))
    deadline = time.monotonic() + 60
    while fleet.row(outcome.task_id).step != Step.THUMBNAILS.value:
        assert time.monotonic() < deadline, "the thumbnail step never started"
        time.sleep(0.01)
    assert control.control.add_consumer(QUEUE, destination=survivor, reply=True)
    pool = psutil.Process(doomed.pid).children()
    assert pool, "the doomed worker has no pool process"
    # when the first worker's main process is SIGKILLed
    doomed.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    # then the step starts again on the survivor at once, not after the visibility timeout
    while _runs(fleet, outcome.task_id).get(Step.THUMBNAILS.value, 0) < 2:
        assert time.monotonic() - killed_at < REDELIVERY_BOUND_S, "the message was not redelivered"
        time.sleep(0.05)
    redelivered_after_s = time.monotonic() - killed_at
    # and its pool died with it (no orphan finishes the step behind the survivor's back)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in pool)
    row = fleet.wait(outcome.task_id)
    assert row.status == "completed", row.error_message
    runs = _runs(fleet, outcome.task_id)
    assert runs == {Step.VALIDATE.value: 1, Step.THUMBNAILS.value: 2, Step.UPDATE.value: 1}
    assert len(fleet.thumbnail_keys("thumbnails/uploads/killed-main.mp4/")) == 5
    print(f"redelivered {redelivered_after_s:.1f} s after the kill")


def test_rabbitmq_killed_mid_run_loses_and_fails_nothing(
    stack: ExitStack,
    node: RabbitNode,
    engine: Engine,
    s3_server: S3Server,
    long_gop_mp4: Path,
    tmp_path: Path,
) -> None:
    fleets = Fleets(
        stack, broker_url=node.url, db_url=str(engine.url), s3=s3_server, logdir=tmp_path
    )
    fleets.worker("rabbit-restart", concurrency=2)
    fleet = fleets.fleet(engine, "rabbit-restart")
    # given a batch of videos (slow thumbnail steps) published and confirmed by the broker
    count = 8
    bodies = [fleet.upload(long_gop_mp4, f"uploads/restart-{i}.mp4") for i in range(count)]
    outcomes = fleet.deliver(*bodies)
    ids = [o.task_id for o in outcomes]
    # when the broker's VM is SIGKILLed mid-run (thumbnail steps running) and started again
    deadline = time.monotonic() + 90
    while not any(r.step == Step.THUMBNAILS.value for r in fleet.rows()):
        assert time.monotonic() < deadline, "no thumbnail step started"
        time.sleep(0.05)
    node.kill()
    done_before = sum(fleet.row(i).status == "completed" for i in ids)
    time.sleep(2)
    node.start()
    # then every video completes: none lost, none failed
    rows = [fleet.wait(i, timeout_s=180) for i in ids]
    statuses = [r.status for r in rows]
    assert statuses == ["completed"] * count, [(r.status, r.error_message) for r in rows]
    assert done_before < count - 1, "the kill came after the run"
    for i in range(count):
        assert len(fleet.thumbnail_keys(f"thumbnails/uploads/restart-{i}.mp4/")) == 5
    # and the duplicates a restart causes (steps whose ack was lost run again) drain as no-ops
    deadline = time.monotonic() + 60
    while node.queue_messages(QUEUE):
        assert time.monotonic() < deadline, "the queue never drained"
        time.sleep(0.5)
    rows = [fleet.row(i) for i in ids]
    assert [r.status for r in rows] == ["completed"] * count
    reruns = sum(n - 1 for r in rows for n in (as_document(r.metadata).get("runs") or {}).values())
    print(f"{count} videos, {done_before} done before the kill, 0 lost, 0 failed, {reruns} reruns")


def test_poison_message_is_dead_lettered_after_the_limit_and_its_row_failed(
    stack: ExitStack,
    vhost: str,
    engine: Engine,
    s3_server: S3Server,
    h264_mp4: Path,
    tmp_path: Path,
) -> None:
    crashes = tmp_path / "crashes.log"
    crashes.touch()
    fleets = Fleets(stack, broker_url=vhost, db_url=str(engine.url), s3=s3_server, logdir=tmp_path)
    fleets.env |= {
        "BROKER_DELIVERY_LIMIT": str(POISON_DELIVERY_LIMIT),
        "POISON_CRASH_LOG": str(crashes),
    }
    worker = fleets.worker("rabbit-poison", app="tests.faults.poison_worker")
    fleet = fleets.fleet(engine, "rabbit-poison")
    # given a video whose validate step kills the worker process every time, and a good one
    poison, good = fleet.deliver(
        fleet.upload(h264_mp4, "poison/crasher.mp4"), fleet.upload(h264_mp4, "uploads/good.mp4")
    )
    # when the fleet runs (the good one completes beside the crashes)
    assert fleet.wait(good.task_id).status == "completed"
    deadline = time.monotonic() + 90
    with Connection(vhost) as conn:
        while read_depth(conn).dead < 1:
            assert time.monotonic() < deadline, "the poison message was never dead-lettered"
            time.sleep(0.1)
    # then the crashes stopped at the limit: RabbitMQ dead-lettered the message
    time.sleep(3)
    crash_count = len(crashes.read_text().splitlines())
    assert crash_count == POISON_DELIVERY_LIMIT + 1, crashes.read_text()
    assert worker.poll() is None, "the worker's main process died"
    # and the recovery sweep fails the row with the reason
    result = CliRunner().invoke(main, ["recover", "--once"], env=fleets.env)
    assert result.exit_code == 0, result.output
    assert f"dead-letter  {poison.task_id}" in result.output
    row = fleet.row(poison.task_id)
    assert row.status == "failed"
    assert row.step == Step.VALIDATE.value
    assert row.error_message == (
        "validate-video: dead-lettered (delivery_limit): "
        "the worker process was lost on each delivery"
    )
    assert as_document(row.metadata)["error_class"] == DEAD_LETTER_ERROR_CLASS
    # and `videofleet tasks list` and the metrics show it
    listing = CliRunner().invoke(main, ["tasks", "list", "--status", "failed"], env=fleets.env)
    assert poison.task_id in listing.output
    assert "dead-lettered" in listing.output
    body, _ = render(engine, vhost, window_s=3600)
    text = body.decode()
    labels = f'error_class="{DEAD_LETTER_ERROR_CLASS}",step="{Step.VALIDATE.value}"'
    assert f"videofleet_failed_tasks{{{labels}}} 1.0" in text, text
    assert "videofleet_dead_letter_messages 0.0" in text
    # and nothing runs it again: no more crashes, nothing queued
    time.sleep(2)
    assert len(crashes.read_text().splitlines()) == crash_count
    with Connection(vhost) as conn:
        depth = read_depth(conn)
    assert (depth.ready, depth.delayed, depth.dead) == (0, 0, 0)
    print(json.dumps({"crashes": crash_count, "limit": POISON_DELIVERY_LIMIT}))
