"""A batch costs one upsert and one broker pipeline, whatever its size, on PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis.client
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from producer.events.ingest import Result, ingest
from producer.events.sources import parse_body
from schema.errors import BrokerUnavailable
from tests.factories import r2_body
from tests.integration.conftest import BUCKET, Fleet

pytestmark = pytest.mark.integration


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """Record the first word of every statement sent to the database."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement.split(None, 1)[0].upper())

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


@contextmanager
def pipelines(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """Record the commands of every Redis pipeline executed (kombu's publish batches)."""
    seen: list[list[str]] = []
    execute = redis.client.Pipeline.execute

    def record(self: redis.client.Pipeline, *args: Any, **kwargs: Any) -> Any:
        seen.append([str(args[0]) for args, _options in self.command_stack])
        return execute(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(redis.client.Pipeline, "execute", record)
        yield seen


def test_a_batch_of_a_hundred_events_is_one_upsert_and_one_pipeline(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given 100 notifications (the largest Queues batch) for objects that do not exist, so that
    # their chains fail at once, plus duplicates of ten of them
    bodies = [
        r2_body(bucket=BUCKET, key=f"uploads/n-{i:03d}.mp4", etag=f"{i:032x}") for i in range(100)
    ]
    events = [e for b in bodies + bodies[:10] for e in parse_body(b)]
    # when they are ingested as one batch
    with statements(fleet.engine) as seen, pipelines(monkeypatch) as sent:
        outcomes = ingest(fleet.engine, fleet.publisher, events)
    # then the database saw two statements that wrote (the upsert that also claims, and the one
    # marking the claims published), and the 100 chains went to the broker in one pipeline: a
    # message and a task-sent event each
    assert [s for s in seen if s in {"INSERT", "UPDATE"}] == ["INSERT", "UPDATE"]
    [commands] = [c for c in sent if "LPUSH" in c]
    assert (commands.count("LPUSH"), commands.count("PUBLISH")) == (100, 100)
    assert [o.result for o in outcomes].count(Result.PUBLISHED) == 100
    assert [o.result for o in outcomes].count(Result.DUPLICATE) == 10
    assert len(fleet.rows()) == 100
    for outcome in outcomes[:100]:
        assert fleet.wait(outcome.task_id).error_message.startswith("validate-video: object")


def test_a_failed_pipeline_releases_every_claim_of_its_batch_and_the_next_delivery_sends_all(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a batch of five whose Redis pipeline breaks when it is sent
    bodies = [
        r2_body(bucket=BUCKET, key=f"uploads/cut-{i}.mp4", etag=f"{i:032x}") for i in range(5)
    ]
    events = [e for b in bodies for e in parse_body(b)]

    def connection_lost(self: redis.client.Pipeline, *args: Any, **kwargs: Any) -> Any:
        if any(str(command[0]) == "LPUSH" for command, _options in self.command_stack):
            raise redis.exceptions.ConnectionError("connection reset by peer")
        return execute(self, *args, **kwargs)

    execute = redis.client.Pipeline.execute
    with monkeypatch.context() as patch:
        patch.setattr(redis.client.Pipeline, "execute", connection_lost)
        # when it is ingested, then the sender is told to retry (a 503 or a Queues retry)
        with pytest.raises(BrokerUnavailable):
            ingest(fleet.engine, fleet.publisher, events)
    # and no row keeps a claim: any part of the pipeline may or may not have arrived
    assert {(r.status, r.workflow_id) for r in fleet.rows()} == {("pending", None)}
    # when the batch is delivered again, every chain is published and runs
    outcomes = ingest(fleet.engine, fleet.publisher, events)
    assert [o.result for o in outcomes] == [Result.PUBLISHED] * 5
    for outcome in outcomes:
        assert fleet.wait(outcome.task_id).error_message.startswith("validate-video: object")
