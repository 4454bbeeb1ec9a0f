"""Which broker a URL names, the Celery settings each gets, and how a dead letter is read."""

from __future__ import annotations

import pytest

from producer.ops.dlq import read_letter
from schema.broker import (
    DEAD_LETTER_QUEUE,
    BrokerKind,
    broker_kind,
    celery_broker_config,
    dead_letter_queues,
)
from schema.message import QUEUE
from schema.settings import Settings
from schema.status import Step


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("redis://127.0.0.1:6379/0", BrokerKind.REDIS),
        ("rediss://cache.example:6380/1", BrokerKind.REDIS),
        ("amqp://guest:guest@127.0.0.1:5672//", BrokerKind.RABBITMQ),
        ("amqps://user:pw@mq.example/videofleet", BrokerKind.RABBITMQ),
        ("pyamqp://mq.example//", BrokerKind.RABBITMQ),
    ],
)
def test_broker_kind_follows_the_url_scheme(url: str, kind: BrokerKind) -> None:
    assert broker_kind(url) is kind


def test_redis_keeps_its_visibility_timeout_and_declares_no_dead_letter_queue() -> None:
    settings = Settings(broker_url="redis://127.0.0.1:6379/0", visibility_timeout_s=7200)
    config = celery_broker_config(settings)
    assert config["broker_transport_options"] == {
        "visibility_timeout": 7200,
        "priority_steps": list(range(10)),
        "queue_order_strategy": "priority",
    }
    assert "task_queues" not in config
    assert dead_letter_queues(settings) == []


def test_rabbitmq_gets_a_quorum_queue_confirms_and_delayed_delivery_through_a_topic_exchange() -> (
    None
):
    settings = Settings(broker_url="amqp://guest:guest@127.0.0.1:5672//", broker_delivery_limit=7)
    config = celery_broker_config(settings)
    assert config["broker_transport_options"] == {"confirm_publish": True}
    [queue] = config["task_queues"]
    assert queue.name == QUEUE
    assert queue.exchange.type == "topic"
    assert queue.queue_arguments == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 7,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": DEAD_LETTER_QUEUE,
    }
    assert config["broker_native_delayed_delivery_queue_type"] == "quorum"
    assert [q.name for q in dead_letter_queues(settings)] == [DEAD_LETTER_QUEUE]


def test_a_dead_step_message_names_its_row_step_and_why() -> None:
    headers = {
        "task": "videofleet.generate_thumbnails",
        "x-first-death-reason": "delivery_limit",
        "x-delivery-count": 0,
    }
    letter = read_letter(headers, [["row-1"], {}, {"chain": None}])
    assert (letter.task_id, letter.step) == ("row-1", Step.THUMBNAILS)
    assert letter.reason == (
        "generate-thumbnails: dead-lettered (delivery_limit): "
        "the worker process was lost on each delivery"
    )


def test_a_dead_message_of_another_task_has_no_step() -> None:
    letter = read_letter({"task": "videofleet.notify_completion"}, [[{"id": "x"}, 0], {}, {}])
    assert letter.step is None
    assert letter.death == "unknown reason"
