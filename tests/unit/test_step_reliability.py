"""The numbers behind retries inside a step: publish budget, storage backoff, memory ceiling."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from celery import Task
from celery.exceptions import Reject
from sqlalchemy.engine import Engine

from schema.errors import NotAVideo, PermanentError, StorageUnavailable
from schema.metadata import as_document
from schema.settings import DEFAULT_WORKER_MAX_MEMORY_PER_CHILD_KIB, Settings
from schema.status import Step
from schema.storage import make_s3_client
from schema.tables import metadata_obj, tasks
from workers import records
from workers.app import PUBLISH_RETRY_MAX_INTERVAL_S, celery_config, publish_retry_policy
from workers.media.rangereader import RETRY_BACKOFF_MAX_S, StorageRetry
from workers.retry import StepTask, failure_message, one_line
from workers.tasks import validate_video


def _waits(policy: dict[str, float]) -> list[float]:
    """The pauses kombu makes between publish attempts under ``policy``."""
    return [
        min(policy["interval_start"] + n * policy["interval_step"], policy["interval_max"])
        for n in range(int(policy["max_retries"]))
    ]


@pytest.mark.parametrize("budget_s", [0.0, 1.0, 15.0, 60.0, 600.0])
def test_publish_retries_wait_at_least_the_budget_and_not_much_more(budget_s: float) -> None:
    waits = _waits(publish_retry_policy(budget_s))
    assert sum(waits) >= budget_s
    assert sum(waits) - budget_s <= PUBLISH_RETRY_MAX_INTERVAL_S


def test_worker_config_carries_the_publish_policy_and_the_memory_ceiling() -> None:
    config = celery_config(Settings(broker_publish_retry_s=30))
    assert config["task_publish_retry"] is True
    assert sum(_waits(config["task_publish_retry_policy"])) >= 30
    # Celery wants KiB: 1.5 GiB by default.
    assert config["worker_max_memory_per_child"] == DEFAULT_WORKER_MAX_MEMORY_PER_CHILD_KIB
    assert DEFAULT_WORKER_MAX_MEMORY_PER_CHILD_KIB == 1_572_864


def test_a_zero_memory_ceiling_means_none() -> None:
    config = celery_config(Settings(worker_max_memory_per_child_kib=0))
    assert config["worker_max_memory_per_child"] is None


def test_memory_ceiling_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_MAX_MEMORY_PER_CHILD_KIB", "524288")
    assert celery_config(Settings())["worker_max_memory_per_child"] == 524_288


def test_boto3_client_retries_every_request_in_the_configured_mode() -> None:
    client = make_s3_client(Settings(s3_max_attempts=7, s3_retry_mode="adaptive"))
    assert client.meta.config.retries == {"total_max_attempts": 7, "mode": "adaptive"}


def test_range_read_retries_back_off_with_full_jitter_up_to_a_cap() -> None:
    retry = StorageRetry.for_attempts(6, deadline=None)
    assert retry.total == 5
    assert retry.status_forcelist is not None
    assert {429, 500, 502, 503, 504} <= set(retry.status_forcelist)
    assert 403 not in retry.status_forcelist  # an expired URL: the step presigns a new one
    for failures in range(1, 8):
        step = retry.new(history=(None,) * failures)  # type: ignore[arg-type]
        ceiling = min(RETRY_BACKOFF_MAX_S, 0.2 * 2**failures)
        waits = [step.get_backoff_time() for _ in range(200)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling / 2  # jittered over the whole range, never fixed
    assert retry.new(total=4).deadline is None


def test_range_read_retries_end_at_the_deadline_whatever_is_left() -> None:
    assert not StorageRetry.for_attempts(6, deadline=time.monotonic() + 60).is_exhausted()
    past = StorageRetry.for_attempts(6, deadline=time.monotonic() - 1)
    assert past.is_exhausted()
    assert past.new(total=3).is_exhausted()  # each retry carries the deadline on


def test_equal_failures_read_equal_whatever_the_memory_addresses() -> None:
    first = "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d0c8a4f2c0] moov atom not found"
    second = "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x5612aa01b340] moov atom not found"
    messages = {
        failure_message(Step.VALIDATE, NotAVideo(text, video_key="k"), retries=0)
        for text in (first, second)
    }
    assert messages == {"validate-video: [mov,mp4,m4a,3gp,3g2,mj2] moov atom not found"}
    assert one_line(ValueError("<Frame object at 0x7f3a2b1c0d90> broke")) == (
        "<Frame object> broke"
    )
    assert one_line(ValueError("offset 0x10 is fine")) == "offset 0x10 is fine"


def test_expected_failures_are_the_permanent_ones() -> None:
    assert StepTask.throws == (PermanentError,)


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = sa.create_engine("sqlite://")
    metadata_obj.create_all(engine)
    with engine.begin() as conn:
        conn.execute(tasks.insert().values(id="t1", video_key="k", created_at=1, updated_at=1))
    yield engine
    engine.dispose()


def _retries(engine: Engine) -> tuple[int, dict[str, int]]:
    with engine.connect() as conn:
        row = conn.execute(sa.select(tasks).where(tasks.c.id == "t1")).one()
    return row.retry_count, as_document(row.metadata)["retries"]


def test_each_retry_is_counted_once_however_often_it_is_written(engine: Engine) -> None:
    def count(message_id: str, retries: int, **why: str) -> None:
        records.count_retries(
            engine, "t1", step=Step.VALIDATE, message_id=message_id, retries=retries, **why
        )

    count("m1", 1, reason="retrying: down", error_class="StorageUnavailable")  # on_retry
    count("m1", 1)  # the retried run starts
    count("m1", 1)  # and is redelivered
    assert _retries(engine) == (1, {"m1": 1})
    # a retry whose on_retry could not write is counted when it starts
    count("m1", 2)
    # the next step's message counts apart
    count("m2", 1, reason="retrying: down")
    assert _retries(engine) == (3, {"m1": 2, "m2": 1})
    with engine.connect() as conn:
        row = conn.execute(sa.select(tasks).where(tasks.c.id == "t1")).one()
    assert row.error_message == "retrying: down"
    assert as_document(row.metadata)["last_retry_class"] == "StorageUnavailable"


def test_a_retry_the_broker_refused_puts_the_message_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refused(*_: object, **__: object) -> None:
        raise Reject(ConnectionError("broker down"), requeue=False)  # what Celery raises

    monkeypatch.setattr(Task, "retry", refused)
    monkeypatch.setattr(time, "sleep", lambda _s: None)
    task = validate_video
    task.push_request(id="m1", args=["t1"], retries=0)
    try:
        with pytest.raises(Reject) as raised:
            task.retry(exc=StorageUnavailable("down"))
    finally:
        task.pop_request()
    assert raised.value.requeue is True  # type: ignore[attr-defined]
