"""What the broker and the live workers hold: the "sign of life" stuck-task recovery needs.

A chain's messages all carry its root id, which is the task row's ``workflow_id`` (the first
step's Celery id, see ``producer.events.publish``); retries keep it. On the Redis transport a
message is either waiting in the queue's lists or delivered and not yet acknowledged (running,
prefetched or holding a retry countdown) in the transport's ``unacked`` hash.

A delivered message stays in ``unacked`` until its worker acknowledges it. When the worker's main
process dies (SIGKILL, OOM killer, a lost host) nobody ever will, and kombu only restores it
after the visibility timeout (an hour by default). So each look first asks the live workers
(Celery's ``inspect``: ``active``, ``reserved`` and ``scheduled``) which messages they hold, and
gives back to the queue every unacked message that no live worker holds and that was delivered
more than ``RECOVERY_UNACKED_GRACE_S`` ago (kombu's ``restore_by_tag``: the same message, with
its retry count and chain, at the head of its queue). The workers are asked *before* ``unacked``
is read, so a message delivered after the question is young and left alone.

A worker too busy to answer within ``RECOVERY_INSPECT_TIMEOUT_S`` has its messages given back
too: the step then runs twice, which is safe (steps are idempotent; a step finding its task
completed stops the chain), never lost.

The key names come from kombu's Redis channel, not from a copy of them.

RabbitMQ shows a message only by delivering it (which counts towards its delivery limit), so
there the answer is coarser: while ``video-events`` or a delayed-delivery queue holds a ready
message every chain counts as live, and with none waiting none does (a message held by a dead
worker is back in the queue at once; a running step is bounded by the step time limit, which
recovery's thresholds already wait out). A backlog thus delays recovery; it never duplicates.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import redis
from amqp.exceptions import AMQPError
from celery import Celery
from kombu.exceptions import OperationalError

from producer.ops.rabbitdepth import read_depth
from schema.broker import redis_priority_options
from schema.errors import BrokerUnavailable
from schema.message import QUEUE
from schema.settings import Settings

logger = logging.getLogger(__name__)

# The inspect replies that list the requests a worker holds, each as ``Request.info()``.
HOLDING_REPLIES = ("active", "reserved", "scheduled")


@dataclass(frozen=True, slots=True)
class BrokerView:
    """One look at the broker, after dead workers' messages were given back."""

    roots: frozenset[str]
    """Root ids of every chain with a message queued or held by a live worker."""
    held_rows: frozenset[str]
    """Task row ids a live worker is running or holds (a message may be gone from the broker,
    e.g. after a Redis restart, while the worker still runs it)."""
    given_back: int = 0
    """Messages of dead workers put back on their queue by this look."""


class _EveryRoot(frozenset[str]):
    """Every root id: while RabbitMQ holds waiting messages, any chain may be among them."""

    def __contains__(self, item: object) -> bool:
        return True


EVERY_ROOT = _EveryRoot()


class Inflight:
    """Reads the ``video-events`` queue and the unacked messages; gives back dead workers' ones."""

    def __init__(self, settings: Settings) -> None:
        self._app = Celery("videofleet-inflight", set_as_current=False)
        self._app.conf.update(
            broker_url=settings.broker_url,
            # The priority lists must be the ones producer and workers use, or a chain waiting
            # in a list this reader skips would look lost and be published again.
            broker_transport_options={
                "visibility_timeout": settings.visibility_timeout_s,
                **redis_priority_options(),
            },
        )
        self._grace_s = settings.recovery_unacked_grace_s
        self._inspect_timeout_s = settings.recovery_inspect_timeout_s

    def look(self) -> BrokerView:
        """Give back the messages no live worker holds, then report what is alive.

        Raises:
            BrokerUnavailable: the broker could not be read.
        """
        try:
            return self._look()
        except (OperationalError, OSError, redis.RedisError, AMQPError) as exc:
            raise BrokerUnavailable(f"broker unavailable: {exc}") from exc

    def _look(self) -> BrokerView:
        held_ids, held_rows = self._held()
        asked_at = time.time()
        with self._app.connection_for_write() as conn:
            if conn.transport.driver_type == "amqp":
                # RabbitMQ shows no message without delivering it (see producer.ops.rabbitdepth),
                # and gives a dead consumer's messages back by itself.
                roots = EVERY_ROOT if read_depth(conn).waiting else frozenset()
                return BrokerView(roots, frozenset(held_rows))
            if conn.transport.driver_type != "redis":
                raise BrokerUnavailable(
                    f"stuck-task recovery reads Redis or RabbitMQ, not {conn.transport_cls}"
                )
            channel: Any = conn.default_channel
            client = channel.client
            given_back = self._give_back(channel, client, held_ids, asked_at)
            payloads: list[bytes] = []
            for priority in channel.priority_steps:
                payloads += client.lrange(channel._q_for_pri(QUEUE, priority), 0, -1)
            payloads += client.hvals(channel.unacked_key)
        roots = frozenset(root for root in map(root_id, payloads) if root)
        return BrokerView(roots, frozenset(held_rows), given_back)

    def _held(self) -> tuple[set[str], set[str]]:
        """Celery ids and task row ids of every request the answering workers hold."""
        with ThreadPoolExecutor(len(HOLDING_REPLIES)) as pool:
            replies = list(pool.map(self._ask, HOLDING_REPLIES))
        ids: set[str] = set()
        rows: set[str] = set()
        for reply in replies:
            for requests in reply.values():
                for item in requests or []:
                    info = item.get("request", item) if isinstance(item, dict) else {}
                    if info.get("id"):
                        ids.add(str(info["id"]))
                    args = info.get("args")
                    if isinstance(args, list | tuple) and args:
                        rows.add(str(args[0]))
        return ids, rows

    def _ask(self, command: str) -> dict[str, Any]:
        # A connection of its own, not one from kombu's process-wide pool: after a broker
        # restart the pool still holds connections the restart closed.
        with self._app.connection_for_write() as conn:
            inspect = self._app.control.inspect(timeout=self._inspect_timeout_s, connection=conn)
            reply: dict[str, Any] | None = getattr(inspect, command)()
            return reply or {}

    def _give_back(self, channel: Any, client: Any, held: set[str], asked_at: float) -> int:
        """Restore unacked messages that no live worker holds and that are older than the grace."""
        delivered = dict(client.zrange(channel.unacked_index_key, 0, -1, withscores=True))
        given_back = 0
        for tag, payload in client.hgetall(channel.unacked_key).items():
            message_id = task_message_id(payload)
            if message_id is None or message_id in held:
                continue
            # A message with no delivery time is one kombu is writing right now: leave it.
            if delivered.get(tag, asked_at) > asked_at - self._grace_s:
                continue
            channel.qos.restore_by_tag(tag, client)
            given_back += 1
            logger.warning(
                "Message %s: held by no live worker; given back to its queue", message_id
            )
        return given_back

    def close(self) -> None:
        """Release the broker connection pool."""
        self._app.close()


def _document(payload: bytes | str) -> dict[str, Any] | None:
    """The kombu message document of a queued or unacked payload (pure).

    Queued messages are the document itself; unacked ones are ``[document, exchange, key]``.
    """
    try:
        document = json.loads(payload)
    except (ValueError, TypeError):
        return None
    if isinstance(document, list) and document:
        document = document[0]
    return document if isinstance(document, dict) else None


def root_id(payload: bytes | str) -> str | None:
    """The chain root id of one stored message (pure)."""
    document = _document(payload) or {}
    headers = document.get("headers") or {}
    root = headers.get("root_id") or headers.get("id")
    return str(root) if root else None


def task_message_id(payload: bytes | str) -> str | None:
    """The Celery task id of one stored message (pure): what ``inspect`` names it by."""
    document = _document(payload) or {}
    headers = document.get("headers") or {}
    message_id = headers.get("id")
    return str(message_id) if message_id else None
