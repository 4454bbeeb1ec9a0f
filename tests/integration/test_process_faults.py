"""Real process faults: a producer killed between commit and publish, a worker's main process
killed mid-step, a broker restarted without persistence. Each leaves work that no message will
move on; redelivery and the recovery sweep have to bring it back, once.

The broker of each test is a private ``redis-server`` (the ``broker`` fixture) with its own
worker processes, so killing and restarting never touches the session's fleet.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa

from producer.dev import localstack
from producer.events.ingest import CLAIM_LEASE_S, IngestResult, ingest
from producer.events.publish import ChainPublisher
from producer.events.sources.r2 import parse_r2
from producer.ops.inflight import Inflight
from producer.ops.recovery import RecoveryResult, recover_once
from schema.lifecycle import now_ms
from schema.metadata import as_document
from schema.settings import Settings
from schema.status import Step
from schema.tables import tasks
from tests.fleet import _wait_worker_ready
from tests.integration.conftest import Fleet, RedisServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def own(fleet: Fleet, broker: RedisServer) -> tuple[Settings, dict[str, str]]:
    """The fleet's database and bucket with the private broker: settings and worker env."""
    env = {**fleet.env, "BROKER_URL": broker.url}
    return fleet.settings.model_copy(update={"broker_url": broker.url}), env


def _age(fleet: Fleet, task_id: str, seconds: float) -> None:
    with fleet.engine.begin() as conn:
        conn.execute(
            sa.update(tasks)
            .where(tasks.c.id == task_id)
            .values(updated_at=now_ms() - round(seconds * 1000))
        )


def _sweep(fleet: Fleet, settings: Settings) -> list[Any]:
    live = Inflight(settings)
    try:
        with ChainPublisher(settings) as publisher:
            return recover_once(fleet.engine, publisher, live, settings)
    finally:
        live.close()


def _worker(stack: ExitStack, env: dict[str, str], logdir: Path, name: str) -> Any:
    proc = localstack.start_worker(stack, logdir=logdir, name=name, concurrency=1, env=env)
    for _ in range(3):  # a ping's connection may be one the broker restart closed
        try:
            _wait_worker_ready(env["BROKER_URL"], f"{name}@", logdir / f"{name}.log")
            return proc
        except redis.ConnectionError:
            time.sleep(0.5)
    pytest.fail(f"worker {name} did not answer a ping")


def _wait_for(what: str, check: Any, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def test_producer_killed_between_commit_and_publish_is_published_by_the_redelivery(
    fleet: Fleet, broker: RedisServer, own: tuple[Settings, dict[str, str]], h264_mp4: Path
) -> None:
    _, env = own
    body = fleet.upload(h264_mp4, "uploads/killed-producer.mp4")
    event = parse_r2(body)
    # given a producer whose broker hangs (SIGSTOP): it commits the row, then blocks publishing
    os.kill(broker.pid, signal.SIGSTOP)
    try:
        producer = subprocess.Popen(
            [sys.executable, "-m", "producer", "ingest", "-"],
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert producer.stdin is not None
        producer.stdin.write(json.dumps(body).encode())
        producer.stdin.close()
        claimed = _wait_for("the committed claim", lambda: _claimed(fleet, event.task_id))
        # when it is killed there, between the commit and the publish
        producer.send_signal(signal.SIGKILL)
        producer.wait()
    finally:
        os.kill(broker.pid, signal.SIGCONT)
    assert broker.queued() == 0
    row = fleet.row(event.task_id)
    assert (row.status, row.workflow_id, row.step) == ("pending", claimed, None)
    # then a redelivery within the lease is a duplicate (the claim's publish may be under way)
    [early] = ingest(fleet.engine, fleet.publisher, [event])
    assert early.result is IngestResult.DUPLICATE
    # and a redelivery after the lease publishes the chain, which completes, once
    _age(fleet, event.task_id, CLAIM_LEASE_S + 1)
    [late] = ingest(fleet.engine, fleet.publisher, [event])
    assert late.result is IngestResult.PUBLISHED
    assert late.workflow_id != claimed
    done = fleet.wait(event.task_id)
    assert done.status == "completed", done.error_message
    assert as_document(done.metadata)["runs"] == {s.value: 1 for s in Step}
    # and a later duplicate of a published claim stays a duplicate, however late it comes
    _age(fleet, event.task_id, CLAIM_LEASE_S + 1)
    [again] = ingest(fleet.engine, fleet.publisher, [event])
    assert again.result is IngestResult.DUPLICATE


def _claimed(fleet: Fleet, task_id: str) -> str | None:
    with fleet.engine.connect() as conn:
        row = conn.execute(sa.select(tasks.c.workflow_id).where(tasks.c.id == task_id)).first()
    return None if row is None else row.workflow_id


def test_a_worker_whose_main_process_is_killed_mid_step_has_that_step_run_again_once(
    fleet: Fleet,
    own: tuple[Settings, dict[str, str]],
    long_gop_mp4: Path,
    tmp_path: Path,
) -> None:
    settings, env = own
    settings = settings.model_copy(update={"recovery_unacked_grace_s": 1.0})
    with ExitStack() as stack:
        # given a worker cutting thumbnails of a slow video
        victim = _worker(stack, env, tmp_path, "victim")
        with ChainPublisher(settings) as publisher:
            [outcome] = ingest(
                fleet.engine,
                publisher,
                [parse_r2(fleet.upload(long_gop_mp4, "uploads/victim.mp4"))],
            )
        task_id = outcome.task_id
        _wait_for("thumbnails to start", lambda: fleet.row(task_id).step == Step.THUMBNAILS)
        # when its main process is SIGKILLed (its pool children die with it)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        time.sleep(1.5)  # older than the grace
        # and another worker is running, and the recovery sweeps
        _worker(stack, env, tmp_path, "rescuer")
        assert _sweep(fleet, settings) == []  # the message itself went back, no new chain
        # then the step runs again on the other worker and the task completes, once
        row = fleet.wait(task_id)
    assert row.status == "completed", row.error_message
    meta = as_document(row.metadata)
    assert meta["runs"] == {
        Step.VALIDATE.value: 1,
        Step.THUMBNAILS.value: 2,
        Step.UPDATE.value: 1,
    }
    assert row.workflow_id == outcome.workflow_id
    assert "recoveries" not in meta
    assert len(fleet.thumbnail_keys("thumbnails/uploads/victim.mp4/")) == 5


def test_broker_restarted_without_persistence_resumes_each_task_at_its_first_unsaved_step(
    fleet: Fleet, h264_mp4: Path, tmp_path: Path
) -> None:
    # A broker of this test's own: kombu's process-wide pools would hand later tests that share
    # a restarted broker's URL the connections the restart closed.
    broker = RedisServer(tmp_path)
    broker.start()
    try:
        _restart_and_recover(fleet, broker, h264_mp4, tmp_path)
    finally:
        broker.stop()


def _restart_and_recover(fleet: Fleet, broker: RedisServer, h264_mp4: Path, tmp_path: Path) -> None:
    env = {**fleet.env, "BROKER_URL": broker.url}
    settings = fleet.settings.model_copy(update={"broker_url": broker.url})
    # given two published chains and no worker yet; one task already probed (its thumbnails
    # message was the one in the broker)
    with ChainPublisher(settings) as publisher:
        outcomes = ingest(
            fleet.engine,
            publisher,
            [parse_r2(fleet.upload(h264_mp4, f"uploads/restart-{i}.mp4")) for i in range(2)],
        )
    fresh, probed = (o.task_id for o in outcomes)
    probe = {"duration_s": 4.0, "width": 320, "height": 240}
    with fleet.engine.begin() as conn:
        conn.execute(
            sa.update(tasks)
            .where(tasks.c.id == probed)
            .values(
                status="processing",
                step=Step.VALIDATE.value,
                metadata=json.dumps({"probe": probe, "runs": {Step.VALIDATE.value: 1}}),
            )
        )
    assert broker.queued() == 2
    # when the broker restarts empty
    broker.stop()
    broker.start()
    assert broker.queued() == 0
    with ExitStack() as stack:
        _worker(stack, env, tmp_path, "after-restart")
        # then a sweep finds nothing while the rows are young
        assert _sweep(fleet, settings) == []
        # and republishes both once they are RECOVERY_PENDING_AFTER_S old
        for task_id in (fresh, probed):
            _age(fleet, task_id, settings.recovery_pending_after_s + 1)
        recovered = {o.task_id: o for o in _sweep(fleet, settings)}
        assert {o.result for o in recovered.values()} == {RecoveryResult.REPUBLISHED}
        assert recovered[fresh].step is Step.VALIDATE
        assert recovered[probed].step is Step.THUMBNAILS
        rows = {task_id: fleet.wait(task_id) for task_id in (fresh, probed)}
    assert {r.status for r in rows.values()} == {"completed"}
    assert as_document(rows[probed].metadata)["runs"] == {s.value: 1 for s in Step}
    assert as_document(rows[fresh].metadata)["runs"] == {s.value: 1 for s in Step}
