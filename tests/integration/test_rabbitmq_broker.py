"""What RabbitMQ offers in place of Redis keys: queue depth, in-flight, the queue's arguments.

Each test has a virtual host of its own with no worker consuming, so the messages it publishes
stay where the test can count them.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest
from kombu import Connection
from sqlalchemy.engine import Engine

from producer.events.publish import ChainPublisher
from producer.ops.dlq import drain
from producer.ops.inflight import Inflight
from producer.ops.metrics import render
from producer.ops.rabbitdepth import read_depth
from schema.broker import DEAD_LETTER_QUEUE
from schema.message import QUEUE
from schema.settings import Settings
from tests.fleet import RABBITMQ_VHOST, _free_port, own_database, rabbitmq_url, reset_database

pytestmark = pytest.mark.integration


@pytest.fixture
def settings() -> Iterator[Settings]:
    """Settings on a fresh vhost (removed after the test) and an empty database."""
    name = f"{RABBITMQ_VHOST}-broker-{uuid.uuid4().hex[:8]}"
    yield Settings(broker_url=rabbitmq_url(name), broker_delivery_limit=4)
    subprocess.run(["rabbitmqctl", "--quiet", "delete_vhost", name], capture_output=True)


@pytest.fixture(scope="module")
def db_url(postgres_url: str) -> str:
    return own_database(postgres_url, "rabbitbroker")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = reset_database(db_url)
    yield engine
    engine.dispose()


def _publish(settings: Settings, count: int) -> None:
    with ChainPublisher(settings) as publisher:
        publisher.publish_many([(f"task-{i}", f"chain-{i}") for i in range(count)])


def test_video_events_is_a_quorum_queue_with_the_delivery_limit_and_dead_letter_route(
    settings: Settings,
) -> None:
    _publish(settings, 1)
    vhost = settings.broker_url.rsplit("/", 1)[1]
    columns = ["name", "type", "durable", "arguments"]
    listing = subprocess.run(
        ["rabbitmqctl", "--quiet", "list_queues", "-p", vhost, "--no-table-headers", *columns],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    queues = {line.split("\t")[0]: line.split("\t")[1:] for line in listing.splitlines()}
    kind, durable, arguments = queues[QUEUE]
    assert (kind, durable) == ("quorum", "true")
    assert '{"x-delivery-limit",4}' in arguments
    assert f'{{"x-dead-letter-routing-key","{DEAD_LETTER_QUEUE}"}}' in arguments
    assert queues[DEAD_LETTER_QUEUE][:2] == ["quorum", "true"]


def test_metrics_count_the_ready_messages_of_the_quorum_queue(
    settings: Settings, engine: Engine
) -> None:
    # given five chains waiting in the queue (no worker on this vhost)
    _publish(settings, 5)
    # when Prometheus scrapes
    body, _ = render(engine, settings.broker_url, window_s=60)
    text = body.decode()
    # then the depth is read from the broker, with the delayed and dead-letter counts beside
    assert 'videofleet_source_up{source="broker"} 1.0' in text
    assert 'videofleet_queue_messages{queue="video-events"} 5.0' in text
    assert "videofleet_broker_delayed_messages 0.0" in text
    assert "videofleet_dead_letter_messages 0.0" in text


def test_an_unreachable_rabbitmq_is_reported_not_raised(engine: Engine) -> None:
    body, _ = render(engine, f"amqp://guest:guest@127.0.0.1:{_free_port()}//", window_s=60)
    assert 'videofleet_source_up{source="broker"} 0.0' in body.decode()


def test_inflight_holds_every_chain_while_messages_wait_and_none_when_the_queue_is_empty(
    settings: Settings, engine: Engine
) -> None:
    live = Inflight(settings)
    try:
        # given an empty queue: no chain is live
        assert "any-chain" not in live.look().roots
        # when chains wait in the queue, any one may be among them: none is taken for dead
        _publish(settings, 2)
        roots = live.look().roots
        assert "chain-0" in roots
        assert "a-chain-never-published" in roots
    finally:
        live.close()
    # and reading did not take (or count a delivery of) any message
    with Connection(settings.broker_url) as conn:
        assert read_depth(conn).ready == 2


def test_draining_an_empty_dead_letter_queue_fails_nothing(
    settings: Settings, engine: Engine
) -> None:
    assert drain(engine, settings) == []
    assert drain(engine, Settings(broker_url="redis://127.0.0.1:1/0")) == []
