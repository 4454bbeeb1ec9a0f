"""Which chains still have a message in the broker: the "sign of life" stuck-task recovery needs.

A chain's messages all carry its root id, which is the task row's ``workflow_id`` (the first
step's Celery id, see ``producer.publish``); retries keep it. On the Redis transport a message
is either waiting in the queue's lists or delivered and not yet acknowledged (running, or
holding a retry countdown) in the transport's ``unacked`` hash; a message whose worker died is
restored from there after the visibility timeout. So a root id found in either place is a chain
that will still run, and a row whose ``workflow_id`` is in neither has no live chain.

The key names come from kombu's Redis channel, not from a copy of them.

RabbitMQ shows a message only by delivering it (which counts towards its delivery limit), so
there the answer is coarser: while ``video-events`` or a delayed-delivery queue holds a ready
message every chain counts as live, and with none waiting none does (a message held by a dead
worker is back in the queue at once; a running step is bounded by the step time limit, which
recovery's thresholds already wait out). A backlog thus delays recovery; it never duplicates.
"""

from __future__ import annotations

import json
from typing import Any

import redis
from amqp.exceptions import AMQPError
from celery import Celery
from kombu.exceptions import OperationalError

from producer.rabbitdepth import read_depth
from schema.errors import BrokerUnavailable
from schema.message import QUEUE
from schema.settings import Settings


class _EveryRoot(set[str]):
    """Every root id: while RabbitMQ holds waiting messages, any chain may be among them."""

    def __contains__(self, item: object) -> bool:
        return True


EVERY_ROOT = _EveryRoot()


class Inflight:
    """Reads the root ids of every message of the ``video-events`` queue, queued or unacked."""

    def __init__(self, settings: Settings) -> None:
        self._app = Celery("videofleet-inflight", set_as_current=False)
        self._app.conf.update(
            broker_url=settings.broker_url,
            broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        )

    def live_roots(self) -> set[str]:
        """Root ids of all chains with a message in the broker.

        Raises:
            BrokerUnavailable: the broker could not be read.
        """
        try:
            with self._app.connection_for_read() as conn:
                if conn.transport.driver_type == "amqp":
                    # RabbitMQ shows no message without delivering it: see producer.rabbitdepth.
                    return EVERY_ROOT if read_depth(conn).waiting else set()
                if conn.transport.driver_type != "redis":
                    raise BrokerUnavailable(
                        f"stuck-task recovery reads Redis or RabbitMQ, not {conn.transport_cls}"
                    )
                channel: Any = conn.default_channel
                client = channel.client
                payloads: list[bytes] = []
                for priority in channel.priority_steps:
                    payloads += client.lrange(channel._q_for_pri(QUEUE, priority), 0, -1)
                payloads += client.hvals(channel.unacked_key)
        except (OperationalError, OSError, redis.RedisError, AMQPError) as exc:
            raise BrokerUnavailable(f"broker unavailable: {exc}") from exc
        return {root for root in map(root_id, payloads) if root}

    def close(self) -> None:
        """Release the broker connection pool."""
        self._app.close()


def root_id(payload: bytes | str) -> str | None:
    """The chain root id of one stored message (pure).

    Queued messages are the kombu message document; unacked ones are stored as
    ``[message, exchange, routing_key]``.
    """
    try:
        document = json.loads(payload)
    except (ValueError, TypeError):
        return None
    if isinstance(document, list) and document:
        document = document[0]
    if not isinstance(document, dict):
        return None
    headers = document.get("headers") or {}
    root = headers.get("root_id") or headers.get("id")
    return str(root) if root else None
