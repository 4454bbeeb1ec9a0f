"""Requeueing real failed tasks on a real worker, through the library and the ``videofleet`` CLI."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from producer.cli import main
from producer.dev.localstack import free_port
from producer.events.publish import ChainPublisher
from producer.ops.inflight import Inflight
from producer.ops.recovery import recover_once
from producer.ops.requeue import Request, RequeueResult, requeue_task
from schema.errors import BrokerUnavailable
from schema.lifecycle import now_ms
from schema.metadata import as_document
from schema.status import Step
from schema.tables import tasks
from tests.integration.conftest import Fleet

pytestmark = pytest.mark.integration


def _fail_by_storage_outage(fleet: Fleet, video: Path, key: str) -> Any:
    """A video uploaded while storage is down for longer than the retries last."""
    body = fleet.upload(video, key)
    fleet.s3_server.stop()
    try:
        [outcome] = fleet.deliver(body)
        row = fleet.wait(outcome.task_id)
    finally:
        fleet.s3_server.start()
    assert row.status == "failed"
    assert row.error_message.startswith("validate-video: gave up after 3 retries")
    return row


def _fail_as_not_a_video(fleet: Fleet, path: Path, key: str) -> Any:
    [outcome] = fleet.deliver(fleet.upload(path, key))
    row = fleet.wait(outcome.task_id)
    assert row.status == "failed"
    return row


def test_task_failed_by_a_storage_outage_is_requeued_by_the_cli_and_completes(
    fleet: Fleet, h264_mp4: Path
) -> None:
    # given a task that failed because storage was down for longer than its retries
    failed = _fail_by_storage_outage(fleet, h264_mp4, "uploads/outage.mp4")
    # when an admin requeues it from the command line, storage being back
    result = CliRunner().invoke(
        main,
        ["requeue", failed.id, "--by", "ann", "--reason", "storage is back"],
        env=fleet.env,
    )
    print(f"$ videofleet requeue {failed.id} --by ann --reason 'storage is back'")
    print(result.output)
    # then it runs again from the failed step and completes, with the requeue on record
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"requeued      {failed.id}  uploads/outage.mp4  from")
    assert "1 requeued" in result.stdout
    row = fleet.wait(failed.id)
    assert row.status == "completed", row.error_message
    assert row.error_message is None
    assert row.workflow_id != failed.workflow_id
    assert row.retry_count == 3  # the whole history of retries, requeues do not reset it
    meta = as_document(row.metadata)
    [record] = meta["requeues"]
    assert record["by"] == "ann"
    assert record["reason"] == "storage is back"
    assert record["from_step"] == Step.VALIDATE.value
    assert record["error"] == failed.error_message
    assert record["at"] >= failed.updated_at
    assert len(fleet.thumbnail_keys("thumbnails/uploads/outage.mp4/")) == 5


def test_task_that_failed_in_thumbnails_resumes_there_and_keeps_its_probe(
    fleet: Fleet, long_gop_mp4: Path
) -> None:
    # given a task whose storage went away once its thumbnail step had started
    [outcome] = fleet.deliver(fleet.upload(long_gop_mp4, "uploads/late-outage.mp4"))
    deadline = time.monotonic() + 60
    while fleet.row(outcome.task_id).step != Step.THUMBNAILS.value:
        assert time.monotonic() < deadline, "the thumbnail step never started"
        time.sleep(0.02)
    fleet.s3_server.stop()
    try:
        failed = fleet.wait(outcome.task_id)
    finally:
        fleet.s3_server.start()
    assert failed.status == "failed"
    assert failed.step == Step.THUMBNAILS.value, failed.error_message
    # when it is requeued
    result = requeue_task(fleet.engine, fleet.publisher, failed.id, Request(by="ann"))
    # then only the thumbnail and update steps run again
    assert result.result is RequeueResult.REQUEUED
    assert result.from_step is Step.THUMBNAILS
    row = fleet.wait(failed.id)
    assert row.status == "completed", row.error_message
    meta = as_document(row.metadata)
    assert meta["runs"][Step.VALIDATE.value] == 1
    assert meta["runs"][Step.UPDATE.value] == 1
    assert meta["probe"]["duration_s"] == pytest.approx(40.0, abs=0.1)
    assert len(fleet.thumbnail_keys("thumbnails/uploads/late-outage.mp4/")) == 5


def test_two_admins_requeueing_the_same_task_at_once_start_one_chain(
    fleet: Fleet, not_a_video: Path
) -> None:
    failed = _fail_as_not_a_video(fleet, not_a_video, "uploads/race.mp4")
    barrier = threading.Barrier(2)
    outcomes = []

    def requeue_as(name: str) -> None:
        barrier.wait()
        outcomes.append(requeue_task(fleet.engine, fleet.publisher, failed.id, Request(by=name)))

    threads = [threading.Thread(target=requeue_as, args=(n,)) for n in ("ann", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(o.result for o in outcomes) == [RequeueResult.REFUSED, RequeueResult.REQUEUED]
    fleet.wait(failed.id)
    time.sleep(1.0)  # a second chain, had one been published, would have run by now
    meta = as_document(fleet.row(failed.id).metadata)
    assert meta["runs"][Step.VALIDATE.value] == 2
    assert len(meta["requeues"]) == 1


def test_requeue_whose_publish_fails_stays_requeued_and_the_recovery_sweep_publishes_it(
    fleet: Fleet, not_a_video: Path
) -> None:
    # given a failed task, and a broker that cannot be reached when an admin requeues it
    failed = _fail_as_not_a_video(fleet, not_a_video, "uploads/no-broker.mp4")
    dead_broker = fleet.settings.model_copy(
        update={"broker_url": f"redis://127.0.0.1:{free_port()}/0"}
    )
    with ChainPublisher(dead_broker) as publisher, pytest.raises(BrokerUnavailable):
        requeue_task(fleet.engine, publisher, failed.id, Request(by="ann"))
    # then the requeue stands: pending without a chain, never back to failed behind its back
    after = fleet.row(failed.id)
    assert (after.status, after.workflow_id, after.step) == ("pending", None, "validate-video")
    assert len(as_document(after.metadata)["requeues"]) == 1
    # and once the broker answers, the recovery sweep publishes it and it runs again
    with fleet.engine.begin() as conn:
        conn.execute(
            sa.update(tasks).where(tasks.c.id == failed.id).values(updated_at=now_ms() - 3_600_000)
        )
    live = Inflight(fleet.settings)
    try:
        [outcome] = recover_once(fleet.engine, fleet.publisher, live, fleet.settings)
    finally:
        live.close()
    assert outcome.step is Step.VALIDATE
    row = fleet.wait(failed.id)
    assert row.status == "failed"
    assert as_document(row.metadata)["runs"][Step.VALIDATE.value] == 2


def test_completed_task_is_requeued_only_with_force_and_then_from_the_start(
    fleet: Fleet, h264_mp4: Path
) -> None:
    [outcome] = fleet.deliver(fleet.upload(h264_mp4, "uploads/done.mp4"))
    assert fleet.wait(outcome.task_id).status == "completed"
    refused = requeue_task(fleet.engine, fleet.publisher, outcome.task_id, Request(by="ann"))
    assert refused.result is RequeueResult.REFUSED
    assert "--force" in refused.detail
    forced = requeue_task(
        fleet.engine, fleet.publisher, outcome.task_id, Request(by="ann", force=True)
    )
    assert forced.result is RequeueResult.REQUEUED
    assert forced.from_step is Step.VALIDATE
    # while it runs again, a second requeue is refused: the task is not ended
    again = requeue_task(
        fleet.engine, fleet.publisher, outcome.task_id, Request(by="bob", force=True)
    )
    assert again.result is RequeueResult.REFUSED
    row = fleet.wait(outcome.task_id)
    assert row.status == "completed"
    assert as_document(row.metadata)["runs"] == {s.value: 2 for s in Step}


def test_bulk_requeue_by_error_text_shows_a_dry_run_then_requeues_with_progress(
    fleet: Fleet, not_a_video: Path, h264_mp4: Path
) -> None:
    # given six failed non-videos and one completed video
    ids = [_fail_as_not_a_video(fleet, not_a_video, f"uploads/list-{i}.mp4").id for i in range(6)]
    [ok] = fleet.deliver(fleet.upload(h264_mp4, "uploads/fine.mp4"))
    fleet.wait(ok.task_id)
    runner = CliRunner()
    args = ["requeue", "--error-contains", "no container", "--key-prefix", "uploads/list-"]
    # when an admin looks first
    dry = runner.invoke(main, [*args, "--dry-run"], env=fleet.env)
    assert dry.exit_code == 0, dry.output
    assert sum(line.startswith("would-requeue ") for line in dry.stdout.splitlines()) == 6
    assert "6 would-requeue" in dry.stdout
    assert all(as_document(fleet.row(i).metadata).get("requeues") is None for i in ids)
    # then requeues at most four of them
    done = runner.invoke(main, [*args, "--limit", "4", "--reason", "bulk"], env=fleet.env)
    assert done.exit_code == 0, done.output
    assert "4 requeued" in done.stdout
    requeued = [i for i in ids if as_document(fleet.row(i).metadata).get("requeues")]
    assert len(requeued) == 4
    # and, once those failed again, all six, with a progress bar on stderr
    for task_id in ids:
        fleet.wait(task_id)
    rest = runner.invoke(main, [*args, "--status", "failed", "--limit", "10"], env=fleet.env)
    assert rest.exit_code == 0, rest.output
    assert "6 requeued" in rest.stdout
    assert "requeueing" in rest.stderr
    for task_id in ids:
        fleet.wait(task_id)
    assert fleet.row(ok.task_id).status == "completed"
    assert len(as_document(fleet.row(ok.task_id).metadata).get("requeues") or []) == 0


def test_tasks_commands_find_tasks_by_status_prefix_age_and_show_one(
    fleet: Fleet, not_a_video: Path, h264_mp4: Path
) -> None:
    bad = _fail_as_not_a_video(fleet, not_a_video, "uploads/x/bad.mp4")
    [good] = fleet.deliver(fleet.upload(h264_mp4, "uploads/y/good.mp4"))
    fleet.wait(good.task_id)
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(main, list(args), env=fleet.env)
        assert result.exit_code == 0, result.output
        return result.stdout

    failed = json.loads(run("tasks", "list", "--status", "failed", "--json"))
    assert [t["id"] for t in failed] == [bad.id]
    assert "no container" in failed[0]["error_message"]
    by_prefix = run("tasks", "list", "--key-prefix", "uploads/y/")
    assert "uploads/y/good.mp4" in by_prefix
    assert "uploads/x/bad.mp4" not in by_prefix
    assert len(run("tasks", "list", "--older-than", "1h").splitlines()) == 2  # header only
    assert (
        len(
            run("tasks", "list", "--newer-than", "1h", "--error-contains", "container").splitlines()
        )
        == 3
    )
    everything = run("tasks")
    assert "uploads/x/bad.mp4" in everything
    assert "uploads/y/good.mp4" in everything
    shown = run("tasks", "show", good.task_id)
    assert f"id             {good.task_id}" in shown
    assert '"video_codec": "h264"' in shown
    assert json.loads(run("tasks", "show", good.task_id, "--json"))["status"] == "completed"
    missing = runner.invoke(main, ["tasks", "show", "nope"], env=fleet.env)
    assert missing.exit_code == 1
    assert "no task nope" in missing.output
