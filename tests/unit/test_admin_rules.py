"""Pure rules of the admin tools: ages, filters, which step a requeue starts at, recovery counts."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from producer.ops.inflight import root_id, task_message_id
from producer.ops.requeue import Request, plan, resume_step
from producer.ops.taskquery import TaskFilter, TaskView, parse_age
from schema.metadata import TaskMetadata, from_document
from schema.settings import Settings
from schema.status import Step

PROBE = {"duration_s": 4.0, "width": 320, "height": 240}


def _view(status: str = "failed", step: str | None = None, **metadata: object) -> TaskView:
    return TaskView(
        id="t1",
        video_key="uploads/a.mp4",
        status=status,
        step=step,
        workflow_id="w1",
        created_at=1,
        updated_at=2,
        error_message="boom",
        retry_count=0,
        bucket="bkt",
        video_id=None,
        metadata=TaskMetadata.model_validate(metadata),
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("45s", 45),
        ("15m", 900),
        ("1h", 3600),
        ("2d", 172_800),
        ("1w", 604_800),
        ("1.5h", 5400),
        ("250ms", 0.25),
    ],
)
def test_ages_parse_to_seconds(text: str, seconds: float) -> None:
    assert parse_age(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "h", "1x", "-1h", "one hour"])
def test_malformed_ages_are_refused_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. 90s"):
        parse_age(text)


def test_an_empty_filter_has_no_clauses_and_each_field_adds_one() -> None:
    assert TaskFilter().clauses(now=0) == []
    full = TaskFilter(older_than_s=1, newer_than_s=2, key_prefix="a/", error_contains="x")
    assert len(full.clauses(now=10_000)) == 4


def test_failed_task_resumes_at_its_failed_step_when_earlier_results_exist() -> None:
    view = _view(step="generate-thumbnails", probe=PROBE)
    assert plan(view, Request(by="ann")) is Step.THUMBNAILS
    assert plan(view, Request(by="ann", from_start=True)) is Step.VALIDATE


def test_resume_falls_back_to_an_earlier_step_when_its_input_is_missing() -> None:
    assert resume_step(_view(step="generate-thumbnails")) is Step.VALIDATE
    assert resume_step(_view(step="update-database", probe=PROBE)) is Step.THUMBNAILS
    assert resume_step(_view(step=None)) is Step.VALIDATE
    assert resume_step(_view(step="no-such-step")) is Step.VALIDATE
    done = _view(step="update-database", probe=PROBE, thumbnails={"keys": ["k"]})
    assert resume_step(done) is Step.UPDATE


def test_pending_processing_and_unforced_completed_tasks_are_refused_with_a_reason() -> None:
    assert "queued" in str(plan(_view("pending"), Request(by="ann")))
    assert "running generate-thumbnails" in str(
        plan(_view("processing", step="generate-thumbnails"), Request(by="ann"))
    )
    assert "force" in str(plan(_view("completed", step="update-database"), Request(by="ann")))
    forced = plan(_view("completed", step="update-database"), Request(by="ann", force=True))
    assert forced is Step.VALIDATE


def test_recoveries_count_only_since_the_last_requeue() -> None:
    meta = {
        "recoveries": [{"at": 10}, {"at": 20}, {"at": 40}],
        "requeues": [{"at": 30, "by": "ann"}],
    }
    assert TaskMetadata.model_validate(meta).recoveries_since_requeue() == 1
    two = TaskMetadata.model_validate({"recoveries": [{"at": 1}, {"at": 2}]})
    assert two.recoveries_since_requeue() == 2
    assert TaskMetadata().recoveries_since_requeue() == 0


def test_a_lost_chain_resumes_at_the_first_step_without_a_saved_result() -> None:
    def first_unsaved(document: dict[str, object]) -> Step:
        return from_document(document).first_unsaved_step()

    probe = {"probe": PROBE}
    assert first_unsaved({}) is Step.VALIDATE
    assert first_unsaved({"probe": {}}) is Step.VALIDATE  # unreadable: as good as missing
    assert first_unsaved(probe) is Step.THUMBNAILS
    assert first_unsaved(probe | {"thumbnails": {"keys": []}}) is Step.THUMBNAILS
    assert first_unsaved(probe | {"thumbnails": {"keys": ["a.jpg"]}}) is Step.UPDATE


def test_task_message_ids_are_read_from_unacked_messages() -> None:
    message = {"headers": {"id": "step-2", "root_id": "chain-1"}, "body": "..."}
    assert task_message_id(json.dumps([message, "", "video-events"]).encode()) == "step-2"
    assert task_message_id(b"not json") is None


def test_root_ids_are_read_from_queued_and_unacked_messages() -> None:
    message = {"headers": {"id": "step-2", "root_id": "chain-1"}, "body": "..."}
    assert root_id(json.dumps(message)) == "chain-1"
    assert root_id(json.dumps([message, "", "video-events"]).encode()) == "chain-1"
    assert root_id(json.dumps({"headers": {"id": "only"}})) == "only"
    assert root_id(b"not json") is None
    assert root_id(json.dumps([1, 2])) is None


def test_admin_is_disabled_without_credentials_and_half_credentials_are_refused() -> None:
    assert not Settings().admin_enabled
    assert Settings(admin_username="ops", admin_password="s3cret-long").admin_enabled
    with pytest.raises(ValidationError, match="ADMIN_USERNAME and ADMIN_PASSWORD"):
        Settings(admin_username="ops")
    with pytest.raises(ValidationError, match="ADMIN_USERNAME and ADMIN_PASSWORD"):
        Settings(admin_password="s3cret-long")


@pytest.mark.parametrize("password", ["changeme", "admin", "password", "ops"])
def test_production_refuses_a_placeholder_admin_password(password: str) -> None:
    with pytest.raises(ValidationError, match="ADMIN_PASSWORD is a placeholder"):
        Settings(
            environment="production",
            s3_secret_access_key="a-real-secret",
            admin_username="ops",
            admin_password=password,
        )
    # the same password is accepted in development
    assert Settings(admin_username="ops", admin_password=password).admin_enabled
