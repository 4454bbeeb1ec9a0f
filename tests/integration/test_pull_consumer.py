"""The HTTP pull consumer against a local Queues API server, real PostgreSQL and a real Redis."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from producer.events.intake import Intake
from producer.events.publish import ChainPublisher
from producer.events.rejections import RejectionLog
from producer.events.rules import EventRules
from producer.transports.pullconsumer import SOURCE, PullConsumer
from producer.transports.queues_api import QueueApiRefused, QueuesApi
from schema.db import make_engine
from schema.settings import Settings
from schema.tables import rejected_events, tasks
from tests.factories import r2_body
from tests.integration.conftest import RedisServer
from tests.integration.queues_server import QueuesServer

pytestmark = pytest.mark.integration

WAIT_S = 30.0
# The worktree's code, whatever the venv's entry point script points at.
CLI = [sys.executable, "-c", "from producer.cli import main; main()"]
FAST_PULL = {
    "PULL_BATCH_SIZE": "100",
    "PULL_VISIBILITY_TIMEOUT_MS": "10000",
    "PULL_RETRY_DELAY_S": "1",
    "PULL_BACKOFF_INITIAL_S": "0.05",
    "PULL_BACKOFF_MAX_S": "0.5",
    "PULL_IDLE_INITIAL_S": "0.05",
    "PULL_IDLE_MAX_S": "0.2",
}


@pytest.fixture
def queues() -> Iterator[QueuesServer]:
    server = QueuesServer(max_retries=5).start()
    yield server
    server.stop()


def consumer_env(
    queues: QueuesServer, broker: RedisServer, engine: Engine, **overrides: str
) -> dict[str, str]:
    return {
        **queues.env(),
        **FAST_PULL,
        "DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "BROKER_URL": broker.url,
        "INGEST_BUCKETS": "bkt",
        **overrides,
    }


def settings_from(env: dict[str, str]) -> Settings:
    return Settings(**{k.lower(): v for k, v in env.items()})  # type: ignore[arg-type]


def _filters(settings: Settings) -> dict[str, Any]:
    """What the ``pull`` command hands its intake: the configured rules, no storage (no deletes)."""
    return {"rules": EventRules.from_settings(settings), "storage": None}


@contextmanager
def running(settings: Settings, engine: Engine) -> Iterator[PullConsumer]:
    """A consumer looping in a thread until the block ends."""
    stop = threading.Event()
    api = QueuesApi(settings)
    with ChainPublisher(settings) as publisher:
        log = RejectionLog(engine)
        intake = Intake(engine, publisher, log, source=SOURCE, **_filters(settings))
        consumer = PullConsumer(settings, api, intake, stop=stop)
        errors: list[Exception] = []

        def loop() -> None:
            try:
                consumer.run()
            except Exception as exc:  # noqa: BLE001  (any error: asserted in the test thread)
                errors.append(exc)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            yield consumer
        finally:
            stop.set()
            thread.join(timeout=WAIT_S)
            api.close()
        assert not thread.is_alive(), "the consumer did not stop"
        assert not errors, errors


def pull_until_sigterm(env: dict[str, str], until: Callable[[], object]) -> tuple[int, str]:
    """Run `videofleet pull` until ``until()`` returns, then SIGTERM it; its exit code and log."""
    proc = subprocess.Popen(
        [*CLI, "pull"], env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        until()
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, output.decode()


def wait_until(predicate: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def task_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(tasks)).all())


def rejection_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(rejected_events)).all())


def test_duplicates_within_and_across_batches_create_one_task_each(
    queues: QueuesServer, broker: RedisServer, transports_engine: Engine
) -> None:
    # given one upload notified three times in one batch, and another upload once
    dup = r2_body(bucket="bkt", key="uploads/dup.mp4", etag="a" * 32)
    other = r2_body(bucket="bkt", key="uploads/other.mp4", etag="b" * 32)
    for body in (dup, dup, other, dup):
        queues.state.send(body)
    settings = settings_from(consumer_env(queues, broker, transports_engine))
    with running(settings, transports_engine):
        # when the consumer drains the queue, and the first upload is notified once more later
        wait_until(lambda: queues.state.backlog() == 0, "the first batch to be acked")
        queues.state.send(dup)
        wait_until(lambda: queues.state.backlog() == 0, "the late duplicate to be acked")
    # then each upload is one task and one published chain, and every message was acked once
    rows = task_rows(transports_engine)
    assert sorted(r.video_key for r in rows) == ["uploads/dup.mp4", "uploads/other.mp4"]
    assert all(r.workflow_id for r in rows)
    assert broker.queued() == 2
    assert len(queues.state.acked) == 5
    assert set(queues.state.acked.values()) == {1}
    assert queues.state.retry_delays == []


def test_broker_outage_retries_with_growing_delay_then_processes(
    queues: QueuesServer, broker: RedisServer, transports_engine: Engine
) -> None:
    # given a notification and a broker that is down
    body = r2_body(bucket="bkt", key="uploads/late.mp4")
    message_id = queues.state.send(body)
    broker.stop()
    settings = settings_from(consumer_env(queues, broker, transports_engine))
    with running(settings, transports_engine) as consumer:
        # when the consumer meets the outage twice
        wait_until(lambda: len(queues.state.retry_delays) >= 2, "two retries")
        # then the message was handed back with a delay growing with its attempts, not acked
        assert queues.state.retry_delays[:2] == [(message_id, 1), (message_id, 2)]
        assert queues.state.acked[message_id] == 0
        # and once the broker is back, the next delivery publishes the chain and is acked
        broker.start()
        wait_until(lambda: queues.state.acked[message_id] == 1, "the ack after recovery")
    [row] = task_rows(transports_engine)
    assert row.workflow_id is not None
    assert broker.queued() == 1
    assert consumer.stats.retried >= 2
    assert consumer.stats.accepted == 1


def test_database_down_retries_every_message_even_the_malformed_ones(
    queues: QueuesServer, broker: RedisServer, transports_engine: Engine
) -> None:
    # given a valid and a malformed message, and a database that cannot be reached
    good = queues.state.send(r2_body(bucket="bkt", key="uploads/a.mp4"))
    bad = queues.state.send("not json", content_type="text")
    env = consumer_env(queues, broker, transports_engine)
    env["DATABASE_URL"] = "postgresql+psycopg://postgres@127.0.0.1:1/unreachable"
    settings = settings_from(env)
    # when the consumer handles the batch
    with running(settings, make_engine(env["DATABASE_URL"])):
        wait_until(lambda: len(queues.state.retry_delays) >= 2, "the retries")
    # then neither is acked: the rejection could not be recorded either, so nothing is lost
    assert sorted(m for m, _ in queues.state.retry_delays[:2]) == sorted([good, bad])
    assert not queues.state.acked
    assert broker.queued() == 0


def test_a_message_failing_until_max_retries_goes_to_the_dead_letter_queue(
    broker: RedisServer, transports_engine: Engine
) -> None:
    # given a queue with max_retries 2 and a broker that stays down
    queues = QueuesServer(max_retries=2).start()
    try:
        queues.state.send(r2_body(bucket="bkt", key="uploads/doomed.mp4"))
        broker.stop()
        env = consumer_env(queues, broker, transports_engine, PULL_RETRY_DELAY_S="0")
        # when the consumer keeps retrying it
        with running(settings_from(env), transports_engine):
            wait_until(lambda: len(queues.state.dlq) == 1, "the message to reach the DLQ")
        # then it is delivered max_retries times and then handed to the DLQ, not looped forever
        assert queues.state.backlog() == 0
        assert sum(queues.state.deliveries.values()) == 2
    finally:
        queues.stop()


def test_malformed_messages_are_acked_and_recorded_never_retried(
    queues: QueuesServer, broker: RedisServer, transports_engine: Engine
) -> None:
    # given malformed messages of every content type beside valid ones (base64 and plain JSON)
    bad = {
        queues.state.send("not json", content_type="text"): "not UTF-8 JSON",
        queues.state.send({"hello": "world"}): "not a recognised",
        queues.state.send(b"\xff\x00\x01", content_type="bytes"): "not UTF-8 JSON",
        queues.state.send("opaque", content_type="v8"): "v8",
        queues.state.send_raw("%%%", content_type="json"): "neither JSON",
        queues.state.send({"action": "PutObject", "bucket": "bkt", "object": {}}): "object key",
        queues.state.send(r2_body(bucket="other-bucket", key="uploads/o.mp4")): "not served",
        queues.state.send(r2_body(bucket="Bad_Bucket", key="uploads/b.mp4")): "not a bucket name",
        queues.state.send(r2_body(bucket="bkt", key="uploads/e.mp4", etag="x")): "entity tag",
    }
    queues.state.send(r2_body(bucket="bkt", key="uploads/b64.mp4", etag="c" * 32))
    queues.state.send(r2_body(bucket="bkt", key="uploads/plain.mp4"), plain_json=True)
    settings = settings_from(consumer_env(queues, broker, transports_engine))
    # when the consumer drains the queue
    with running(settings, transports_engine) as consumer:
        wait_until(lambda: queues.state.backlog() == 0, "every message to be acked")
    # then every message was acked once, the malformed ones recorded with a reason
    assert len(queues.state.acked) == 11
    assert set(queues.state.acked.values()) == {1}
    assert queues.state.retry_delays == []
    recorded = {r.message_id: r for r in rejection_rows(transports_engine)}
    assert set(recorded) == set(bad)
    for message_id, reason in bad.items():
        assert reason in recorded[message_id].reason
        assert recorded[message_id].source == SOURCE
    assert sorted(r.video_key for r in task_rows(transports_engine)) == [
        "uploads/b64.mp4",
        "uploads/plain.mp4",
    ]
    assert consumer.stats.rejected == 9


def test_an_unacked_message_is_redelivered_after_the_visibility_timeout(
    queues: QueuesServer, broker: RedisServer, transports_engine: Engine
) -> None:
    # given a message leased by a consumer that died before acking (1 s visibility timeout)
    message_id = queues.state.send(r2_body(bucket="bkt", key="uploads/orphan.mp4"))
    env = consumer_env(queues, broker, transports_engine, PULL_VISIBILITY_TIMEOUT_MS="1000")
    dead = QueuesApi(settings_from(env))
    [leased] = dead.pull()
    dead.close()
    assert leased.attempts == 1
    # when a live consumer runs
    with running(settings_from(env), transports_engine):
        wait_until(lambda: queues.state.acked[message_id] == 1, "the redelivered message")
    # then it got the message again after the lease expired, with attempts 2, and ingested it
    assert queues.state.deliveries[message_id] == 2
    assert len(task_rows(transports_engine)) == 1


def test_two_consumers_at_once_process_each_message_once(
    queues: QueuesServer, broker: RedisServer, transports_engine: Engine
) -> None:
    # given 200 uploads and two consumers pulling batches of 10
    for n in range(200):
        queues.state.send(r2_body(bucket="bkt", key=f"uploads/{n:03}.mp4", etag=f"{n:032x}"))
    env = consumer_env(queues, broker, transports_engine, PULL_BATCH_SIZE="10")
    # when both run at once
    with (
        running(settings_from(env), transports_engine) as first,
        running(settings_from(env), transports_engine) as second,
    ):
        wait_until(lambda: queues.state.backlog() == 0, "the queue to drain")
    # then each message was delivered and acked exactly once, one task and chain per upload
    assert first.stats.messages > 0
    assert second.stats.messages > 0
    assert first.stats.messages + second.stats.messages == 200
    assert set(queues.state.deliveries.values()) == {1}
    assert set(queues.state.acked.values()) == {1}
    assert len(task_rows(transports_engine)) == 200
    assert broker.queued() == 200


def test_pull_concurrency_keeps_several_batches_in_flight_and_processes_each_once(
    queues: QueuesServer, broker: RedisServer, transports_engine: Engine
) -> None:
    # given 300 uploads behind a slow API (every pull and ack takes 0.1 s)
    for n in range(300):
        queues.state.send(r2_body(bucket="bkt", key=f"uploads/{n:03}.mp4", etag=f"{n:032x}"))
    queues.state.pull_delay_s = queues.state.ack_delay_s = 0.1
    env = consumer_env(queues, broker, transports_engine, PULL_BATCH_SIZE="10")
    # when one `videofleet pull` process runs with PULL_CONCURRENCY=4 until the queue drains
    returncode, log = pull_until_sigterm(
        {**env, "PULL_CONCURRENCY": "4"},
        lambda: wait_until(lambda: len(queues.state.acked) == 300, "every message to be acked"),
    )
    # then its pulls overlapped, yet each message was delivered, acked and ingested once
    assert returncode == 0, log
    assert queues.state.max_pulls_in_flight >= 2, log
    assert set(queues.state.deliveries.values()) == {1}
    assert set(queues.state.acked.values()) == {1}
    assert len(task_rows(transports_engine)) == 300
    assert broker.queued() == 300
    assert "stopped after 300 messages (300 accepted" in log


def test_api_rate_limits_and_server_errors_are_backed_off_and_survived(
    queues: QueuesServer, broker: RedisServer, transports_engine: Engine
) -> None:
    # given an API that answers 429 (with Retry-After) twice, 500 twice, and fails one ack
    queues.state.fail_next("pull", 429, 2, {"Retry-After": "0.2"})
    queues.state.fail_next("pull", 500, 2)
    queues.state.fail_next("ack", 503, 1)
    for n in range(3):
        queues.state.send(r2_body(bucket="bkt", key=f"uploads/{n}.mp4", etag=f"{n:032x}"))
    settings = settings_from(consumer_env(queues, broker, transports_engine))
    # when the consumer runs
    started = time.monotonic()
    with running(settings, transports_engine) as consumer:
        wait_until(lambda: queues.state.backlog() == 0, "the queue to drain")
    # then it waited (at least the Retry-After twice), kept going and lost nothing
    assert time.monotonic() - started >= 0.4
    assert consumer.stats.api_errors == 5
    assert set(queues.state.acked.values()) == {1}
    assert len(queues.state.acked) == 3
    assert len(task_rows(transports_engine)) == 3


def test_a_rate_limited_ack_waits_its_retry_after_and_pull_backoff_resets_after_success(
    queues: QueuesServer, broker: RedisServer, transports_engine: Engine
) -> None:
    # given an API that answers the first ack 429 with Retry-After 0.4 s, twice, then the next
    # pulls 500 three times
    queues.state.fail_next("ack", 429, 2, {"Retry-After": "0.4"})
    for n in range(3):
        queues.state.send(r2_body(bucket="b", key=f"uploads/ra-{n}.mp4", etag=f"{n:032x}"))
    settings = settings_from(consumer_env(queues, broker, transports_engine))
    with running(settings, transports_engine):
        wait_until(lambda: len(queues.state.acked) == 3, "the batch to be acked")
        queues.state.fail_next("pull", 500, 3)
        wait_until(
            lambda: (
                sum(1 for a, _, s in queues.state.calls if a == "pull" and s == 500) == 3
                and queues.state.calls[-1][2] == 200
            ),
            "the pulls to succeed again",
        )
        queues.state.fail_next("pull", 500, 1)
        wait_until(lambda: queues.state.calls[-1][2] == 200, "one more failed pull")
    calls = list(queues.state.calls)
    # then each ack call came at least the Retry-After after the one refused
    acks = [t for a, t, _ in calls if a == "ack"]
    assert len(acks) == 3, calls
    assert all(later - earlier >= 0.4 for earlier, later in itertools.pairwise(acks)), calls
    # and no pull went out while the Retry-After held
    assert not [t for a, t, _ in calls if a == "pull" and acks[0] < t < acks[-1]]
    # and the pull backoff, reset by every success, stays within PULL_BACKOFF_MAX_S
    gaps = [later[1] - earlier[1] for earlier, later in itertools.pairwise(calls)]
    assert max(gaps) < settings.pull_backoff_max_s + 0.3


def test_an_empty_queue_is_polled_with_a_growing_pause_not_a_tight_loop(
    queues: QueuesServer, broker: RedisServer, transports_engine: Engine
) -> None:
    # given an empty queue, an idle pause from 0.05 s doubling to 0.2 s
    settings = settings_from(consumer_env(queues, broker, transports_engine))
    # when the consumer runs for one second
    with running(settings, transports_engine):
        time.sleep(1.0)
        idle_pulls = len(queues.state.pull_requests)
        # then it pulled a handful of times (0.05 + 0.1 + 0.2 + 0.2 ... s), not thousands
        assert 3 <= idle_pulls <= 9
        # and the pause resets as soon as messages arrive
        queues.state.send(r2_body(bucket="bkt", key="uploads/wake.mp4"))
        wait_until(lambda: queues.state.backlog() == 0, "the message", timeout_s=5.0)
    assert queues.state.pull_requests[0] == {"batch_size": 100, "visibility_timeout_ms": 10000}


def test_a_refused_token_stops_the_consumer_with_a_clear_error(
    queues: QueuesServer, broker: RedisServer, transports_engine: Engine
) -> None:
    # given a consumer configured with the wrong API token
    env = consumer_env(queues, broker, transports_engine, CF_API_TOKEN="wrong")
    settings = settings_from(env)
    api = QueuesApi(settings)
    with ChainPublisher(settings) as publisher:
        log = RejectionLog(transports_engine)
        intake = Intake(transports_engine, publisher, log, source="t", **_filters(settings))
        consumer = PullConsumer(settings, api, intake, stop=threading.Event())
        # when it runs, then it stops at once with the API's answer instead of retrying forever
        with pytest.raises(QueueApiRefused, match="403"):
            consumer.run()
    api.close()


def test_a_refusal_in_one_concurrent_loop_stops_them_all_and_the_command_exits_1(
    queues: QueuesServer, broker: RedisServer, transports_engine: Engine
) -> None:
    # given `videofleet pull` with three loops, one of whose pulls is refused (403)
    queues.state.fail_next("pull", 403, 1)
    env = consumer_env(queues, broker, transports_engine)
    result = subprocess.run(
        [*CLI, "pull"],
        env={**os.environ, **env, "PULL_CONCURRENCY": "3"},
        capture_output=True,
        timeout=WAIT_S,
    )
    # then the other two stop too (the queue is empty: alone they would poll forever), and the
    # command exits 1 with the API's answer
    assert result.returncode == 1, result.stderr
    assert b"403" in result.stderr


def test_sigterm_during_a_pull_acks_the_batch_in_hand_and_exits_0(
    queues: QueuesServer, broker: RedisServer, transports_engine: Engine
) -> None:
    # given `videofleet pull` running, with its first pull held by the server for 1.5 s
    for n in range(5):
        queues.state.send(r2_body(bucket="bkt", key=f"uploads/{n}.mp4", etag=f"{n:032x}"))
    queues.state.pull_delay_s = 1.5
    # when SIGTERM arrives while the batch is on its way
    returncode, log = pull_until_sigterm(
        consumer_env(queues, broker, transports_engine),
        lambda: queues.state.pull_started.wait(WAIT_S) or pytest.fail("the consumer never pulled"),
    )
    # then the batch was ingested and acked, no further pull was made, and the exit code is 0
    assert returncode == 0, log
    assert "SIGTERM received" in log
    assert len(queues.state.acked) == 5, log
    assert len(queues.state.pull_requests) == 1
    assert len(task_rows(transports_engine)) == 5


def test_pull_command_without_queue_settings_names_what_is_missing() -> None:
    # given no Cloudflare settings, when `videofleet pull` starts
    env = {k: v for k, v in os.environ.items() if not k.startswith("CF_")}
    result = subprocess.run([*CLI, "pull"], env=env, capture_output=True, timeout=60)
    # then it refuses with the variables to set
    assert result.returncode == 1
    assert b"CF_ACCOUNT_ID, CF_QUEUE_ID, CF_API_TOKEN" in result.stderr


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
R2_SHAPED = st.fixed_dictionaries(
    {"action": st.sampled_from(["PutObject", "DeleteObject", "Nope", 3]), "bucket": JSON},
    # never a usable key, so never a valid notification
    optional={
        "object": st.dictionaries(
            st.sampled_from(["key", "size", "eTag"]), JSON.filter(lambda v: not isinstance(v, str))
        )
    },
)
ARBITRARY_MESSAGE = st.one_of(
    st.tuples(st.just("json"), JSON | R2_SHAPED, st.booleans()),
    st.tuples(st.just("text"), st.text(), st.just(False)),
    st.tuples(st.just("bytes"), st.binary(), st.just(False)),
    st.tuples(st.just("v8"), st.text(), st.just(False)),
)


@given(messages=st.lists(ARBITRARY_MESSAGE, min_size=1, max_size=5))
@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_arbitrary_invalid_messages_are_acked_and_recorded_and_enqueue_nothing(
    queues: QueuesServer,
    broker: RedisServer,
    transports_engine: Engine,
    messages: list[tuple[str, Any, bool]],
) -> None:
    # given arbitrary messages (never valid: the R2-shaped ones lack a usable key)
    queues.state.acked.clear()
    sent = [queues.state.send(b, content_type=t, plain_json=p) for t, b, p in messages]
    settings = settings_from(consumer_env(queues, broker, transports_engine))
    api = QueuesApi(settings)
    try:
        with ChainPublisher(settings) as publisher:
            log = RejectionLog(transports_engine)
            intake = Intake(transports_engine, publisher, log, source=SOURCE, **_filters(settings))
            consumer = PullConsumer(settings, api, intake, stop=threading.Event())
            # when one batch is pulled and handled
            consumer.handle(api.pull())
    finally:
        api.close()
    # then every message is acked and recorded as rejected, and nothing is enqueued
    assert sorted(queues.state.acked) == sorted(sent)
    assert consumer.stats.rejected == len(sent)
    assert {r.message_id for r in rejection_rows(transports_engine)} >= set(sent)
    assert task_rows(transports_engine) == []
    assert broker.queued() == 0
