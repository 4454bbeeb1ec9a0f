"""Stuck-task recovery against a real broker, database and worker.

Tasks get stuck when the chain that should move them on is gone: its publish failed, or the
worker running it vanished together with its message. The rows below are put in those states
the way the failures leave them; the recoverer then has to find and republish them, once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from producer.cli import main
from producer.dev.localstack import free_port
from producer.events.ingest import ingest
from producer.events.publish import ChainPublisher
from producer.events.sources.r2 import parse_r2
from producer.ops.inflight import Inflight
from producer.ops.recovery import RecoveryResult, find_stale, recover_once
from schema.errors import BrokerUnavailable
from schema.lifecycle import now_ms
from schema.metadata import as_document
from schema.settings import Settings
from schema.status import Step
from schema.tables import tasks
from tests.integration.conftest import Fleet

pytestmark = pytest.mark.integration


def _dead_broker(settings: Settings) -> Settings:
    return settings.model_copy(update={"broker_url": f"redis://127.0.0.1:{free_port()}/0"})


def _ingest_while_broker_is_down(fleet: Fleet, path: Path, key: str) -> str:
    """A row inserted and committed whose chain could not be published: pending, no chain."""
    event = parse_r2(fleet.upload(path, key))
    with ChainPublisher(_dead_broker(fleet.settings)) as dead, pytest.raises(BrokerUnavailable):
        ingest(fleet.engine, dead, [event])
    row = fleet.row(event.task_id)
    assert (row.status, row.workflow_id) == ("pending", None)
    return event.task_id


def _set(fleet: Fleet, task_id: str, **values: Any) -> None:
    with fleet.engine.begin() as conn:
        conn.execute(sa.update(tasks).where(tasks.c.id == task_id).values(**values))


def _ago_ms(seconds: float) -> int:
    return now_ms() - round(seconds * 1000)


def _left_in_thumbnails_by_a_dead_worker(
    fleet: Fleet, path: Path, key: str, *, recoveries: int = 0
) -> str:
    """What a worker killed with its message leaves: processing in thumbnails, probe recorded."""
    task_id = _ingest_while_broker_is_down(fleet, path, key)
    stuck_for_s = fleet.settings.recovery_pending_after_s + 5
    metadata = {
        "probe": {"duration_s": 4.0, "width": 320, "height": 240},
        "runs": {Step.VALIDATE.value: 1, Step.THUMBNAILS.value: 1},
        "recoveries": [
            {"at": _ago_ms(3600 - i), "status": "processing", "step": Step.THUMBNAILS.value}
            for i in range(recoveries)
        ],
    }
    _set(
        fleet,
        task_id,
        status="processing",
        step=Step.THUMBNAILS.value,
        workflow_id="lost-chain",
        metadata=json.dumps(metadata),
        updated_at=_ago_ms(stuck_for_s),
    )
    return task_id


def test_pending_task_whose_chain_was_never_published_is_published_once_and_completes(
    fleet: Fleet, h264_mp4: Path
) -> None:
    # given a task whose publish failed, and no redelivery of its notification
    task_id = _ingest_while_broker_is_down(fleet, h264_mp4, "uploads/unpublished.mp4")
    live = Inflight(fleet.settings)
    try:
        # a fresh one is left alone: its publish may still be on its way
        assert recover_once(fleet.engine, fleet.publisher, live, fleet.settings) == []
        # when it has been pending for longer than RECOVERY_PENDING_AFTER_S
        _set(fleet, task_id, updated_at=_ago_ms(fleet.settings.recovery_pending_after_s + 1))
        # and two recoverers sweep at the same moment
        barrier = threading.Barrier(2)
        outcomes: list[Any] = []

        def sweep() -> None:
            barrier.wait()
            outcomes.extend(recover_once(fleet.engine, fleet.publisher, live, fleet.settings))

        threads = [threading.Thread(target=sweep) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        live.close()
    # then exactly one published it, and the task completed with each step run once
    republished = [o for o in outcomes if o.result is RecoveryResult.REPUBLISHED]
    assert len(republished) == 1
    assert republished[0].step is Step.VALIDATE
    row = fleet.wait(task_id)
    assert row.status == "completed", row.error_message
    assert row.workflow_id == republished[0].workflow_id
    meta = as_document(row.metadata)
    assert meta["runs"] == {s.value: 1 for s in Step}
    [record] = meta["recoveries"]
    assert (record["status"], record["step"]) == ("pending", Step.VALIDATE.value)


def test_processing_task_without_a_live_chain_is_republished_from_its_first_unsaved_step(
    fleet: Fleet, h264_mp4: Path
) -> None:
    # given a task left in generate-thumbnails, untouched for RECOVERY_PENDING_AFTER_S
    task_id = _left_in_thumbnails_by_a_dead_worker(fleet, h264_mp4, "uploads/orphan.mp4")
    # when the recoverer sweeps
    live = Inflight(fleet.settings)
    try:
        [outcome] = recover_once(fleet.engine, fleet.publisher, live, fleet.settings)
        # a second sweep finds nothing: the new chain is alive
        assert recover_once(fleet.engine, fleet.publisher, live, fleet.settings) == []
    finally:
        live.close()
    # then it is republished from generate-thumbnails and completes without validating again
    assert outcome.result is RecoveryResult.REPUBLISHED
    assert outcome.step is Step.THUMBNAILS
    assert outcome.attempts == 1
    row = fleet.wait(task_id)
    assert row.status == "completed", row.error_message
    meta = as_document(row.metadata)
    assert meta["runs"] == {
        Step.VALIDATE.value: 1,
        Step.THUMBNAILS.value: 2,
        Step.UPDATE.value: 1,
    }
    assert len(fleet.thumbnail_keys("thumbnails/uploads/orphan.mp4/")) == 5


def test_task_stuck_more_often_than_allowed_fails_with_an_explanation(
    fleet: Fleet, h264_mp4: Path
) -> None:
    # given a task already recovered twice, found stuck again, with two attempts allowed
    task_id = _left_in_thumbnails_by_a_dead_worker(
        fleet, h264_mp4, "uploads/hopeless.mp4", recoveries=2
    )
    settings = fleet.settings.model_copy(update={"recovery_max_attempts": 2})
    live = Inflight(settings)
    try:
        [outcome] = recover_once(fleet.engine, fleet.publisher, live, settings)
    finally:
        live.close()
    # then it is not republished but failed, saying why
    assert outcome.result is RecoveryResult.GAVE_UP
    row = fleet.row(task_id)
    assert row.status == "failed"
    assert row.error_message == "stuck in generate-thumbnails 3 times; gave up"
    recoveries = as_document(row.metadata)["recoveries"]
    assert len(recoveries) == 3
    assert recoveries[-1]["gave_up"] is True


def test_task_waiting_out_a_retry_backoff_is_alive_not_stuck(fleet: Fleet, h264_mp4: Path) -> None:
    # given a task retrying through a storage outage (its message held by the worker)
    body = fleet.upload(h264_mp4, "uploads/backoff.mp4")
    fleet.s3_server.stop()
    try:
        [published] = fleet.deliver(body)
        # and a recoverer so impatient that every row looks stale (below the setting's floor)
        eager = fleet.settings.model_copy(
            update={"recovery_pending_after_s": 0, "recovery_unacked_grace_s": 0}
        )
        live = Inflight(eager)
        stale_seen = 0
        deadline = time.monotonic() + 6
        try:
            while time.monotonic() < deadline:
                stale_seen += bool(find_stale(fleet.engine, eager, now=now_ms()))
                # when it sweeps again and again during the retries
                assert recover_once(fleet.engine, fleet.publisher, live, eager) == []
                time.sleep(0.2)
        finally:
            live.close()
    finally:
        fleet.s3_server.start()
    # then it never republished the task, although the row looked stale: the broker had its chain
    assert stale_seen > 0
    row = fleet.wait(published.task_id)
    assert row.status == "completed", row.error_message
    assert as_document(row.metadata).get("recoveries") is None


def test_recover_command_sweeps_once_and_reports_what_it_did(fleet: Fleet, h264_mp4: Path) -> None:
    task_id = _ingest_while_broker_is_down(fleet, h264_mp4, "uploads/cli-recover.mp4")
    _set(fleet, task_id, updated_at=_ago_ms(fleet.settings.recovery_pending_after_s + 1))
    result = CliRunner().invoke(main, ["recover", "--once"], env=fleet.env)
    assert result.exit_code == 0, result.output
    [line, summary] = result.stdout.splitlines()
    assert line.startswith(f"republished  {task_id}  uploads/cli-recover.mp4  was pending in")
    assert summary == "1 stuck task(s) handled"
    assert fleet.wait(task_id).status == "completed"


def test_recover_loop_keeps_sweeping_until_sigterm(fleet: Fleet, h264_mp4: Path) -> None:
    # given a recoverer running as a long-lived process
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from producer.cli import main; main()",
            "recover",
            "--interval-s",
            "1",
        ],
        env=fleet.env,
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)  # a sweep or two with nothing to do
        # when a task gets stuck while it runs
        task_id = _ingest_while_broker_is_down(fleet, h264_mp4, "uploads/loop.mp4")
        _set(fleet, task_id, updated_at=_ago_ms(fleet.settings.recovery_pending_after_s + 1))
        # then a later sweep picks it up, and the task completes
        assert fleet.wait(task_id).status == "completed"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    # and SIGTERM ends the loop cleanly
    assert proc.returncode == 0, err
    assert f"republished  {task_id}" in out
    assert "recovering stuck tasks every 1 s" in err
