"""Publishing the workflow chain by task name; the producer never imports worker code."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from celery import Celery
from kombu import Producer
from kombu.exceptions import (  # type: ignore[attr-defined]  # celery-types predates 5.7
    BatchPublishError,
    OperationalError,
)

from schema.broker import celery_broker_config, dead_letter_queues, priorities_enabled
from schema.errors import BrokerUnavailable, PartialPublish
from schema.lanes import Lane, priority
from schema.lifecycle import now_ms
from schema.message import D1_MIRROR_TASK_NAME, QUEUE, TASK_NAMES
from schema.settings import Settings
from schema.status import STEPS, Step

logger = logging.getLogger(__name__)

PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0.2,
    "interval_step": 0.5,
    "interval_max": 2,
}
# Redis commands per pipeline round trip (two per chain: the message and its task-sent event).
PIPELINE_MAX_COMMANDS = 1000
# The lane of a chain that ``publish_many`` is not told about: a bucket notification's.
DEFAULT_LANE = Lane.NORMAL


class ChainPublisher:
    """Sends ``validate -> thumbnails -> update`` for a task row to the ``video-events`` queue."""

    def __init__(self, settings: Settings) -> None:
        self._app = Celery("videofleet-producer", set_as_current=False)
        self._app.conf.update(
            broker_url=settings.broker_url,
            task_serializer="json",
            task_send_sent_event=True,
            **celery_broker_config(settings),
        )
        self._d1_expiry_ms = settings.d1_mirror_expiry_s * 1000 if settings.d1_enabled else None
        self._dead_letters = dead_letter_queues(settings)
        self._priorities = priorities_enabled(settings)

    def publish(
        self,
        task_id: str,
        *,
        workflow_id: str,
        start: Step = Step.VALIDATE,
        lane: Lane = DEFAULT_LANE,
    ) -> None:
        """Publish the chain from ``start`` on; its first message's id is ``workflow_id``.

        The first step's Celery id equals ``workflow_id``, so it is also the chain's ``root_id``:
        the task row's ``workflow_id`` finds every step of the chain in Flower.

        Raises:
            BrokerUnavailable: the broker refused or could not be reached.
        """
        try:
            self.publish_many([(task_id, workflow_id)], start=start, lanes={task_id: lane})
        except PartialPublish as exc:
            raise BrokerUnavailable(str(exc)) from exc

    def publish_many(
        self,
        chains: Sequence[tuple[str, str]],
        *,
        start: Step = Step.VALIDATE,
        lanes: Mapping[str, Lane] | None = None,
    ) -> None:
        """Publish one chain per ``(task_id, workflow_id)`` in one broker round trip.

        ``lanes`` gives a task id's lane (``schema.lanes``; ``DEFAULT_LANE`` for the others):
        with priorities on, every step of its chain carries that lane's priority for the step.

        Celery's ``chain.apply_async`` drops a ``producer`` argument and acquires a connection per
        call, so the chain is sent the way Celery itself sends it (protocol 2): the first step as
        a message whose ``chain`` option lists the remaining steps in reverse order. ``root_id``
        is the first step's id, which every later step inherits. Inside kombu's
        ``Producer.batch()`` the messages (and their task-sent events) are buffered and go out as
        one Redis pipeline; transports without batching publish each message at once.

        Raises:
            PartialPublish: the broker failed; ``published`` names the task ids known to be sent
                (none when a pipeline failed: any part of it may have been delivered, and
                delivering a chain twice is safe, as every step is idempotent).
        """
        remaining = STEPS[STEPS.index(start) :]
        queued: list[str] = []
        batched = False
        with self._app.producer_or_acquire() as producer:
            try:
                batched = producer.supports_batch_publish
                # On RabbitMQ the dead-letter queue must exist before a message can die.
                for queue in [self._app.amqp.queues[QUEUE], *self._dead_letters]:
                    producer.maybe_declare(queue, retry=True, **PUBLISH_RETRY_POLICY)
                with producer.batch(max_size=PIPELINE_MAX_COMMANDS):
                    for task_id, workflow_id in chains:
                        lane = (lanes or {}).get(task_id, DEFAULT_LANE)
                        self._send_chain(producer, task_id, workflow_id, remaining, lane)
                        queued.append(task_id)
            except (BatchPublishError, OperationalError, OSError) as exc:
                # A failed pipeline may have delivered any part of itself: report none as sent.
                sent = () if batched else tuple(queued)
                raise PartialPublish(f"broker unavailable: {exc}", published=sent) from exc

    def _send_chain(
        self,
        producer: Producer,
        task_id: str,
        workflow_id: str,
        steps: Sequence[Step],
        lane: Lane,
    ) -> None:
        """Send the first step by name, the rest riding along as its ``chain`` option.

        Each later step's signature holds its own priority: the worker sends the next step with
        its signature's options (``task_inherit_parent_priority`` stays off).
        """
        first, *rest = steps
        args = (task_id,)
        self._app.send_task(
            TASK_NAMES[first],
            args=args,
            task_id=workflow_id,
            root_id=workflow_id,
            chain=[
                self._app.signature(
                    TASK_NAMES[step],
                    args=args,
                    immutable=True,
                    queue=QUEUE,
                    **self._priority_option(lane, step),
                )
                for step in reversed(rest)
            ]
            or None,
            priority=self._priority(lane, first),
            producer=producer,
            queue=QUEUE,
            retry=True,
            retry_policy=PUBLISH_RETRY_POLICY,
            # Celery would declare the queue and saferepr the arguments once per message.
            declare=[],
            argsrepr=repr(args),
            kwargsrepr="{}",
        )

    def _priority(self, lane: Lane, step: Step) -> int | None:
        """The priority of ``step`` in ``lane``; None (FIFO) with priorities off."""
        return priority(lane, step) if self._priorities else None

    def _priority_option(self, lane: Lane, step: Step) -> dict[str, int]:
        """A later step's signature option: absent with priorities off, as before lanes."""
        level = self._priority(lane, step)
        return {} if level is None else {"priority": level}

    def send_d1_mirror(self, task_ids: Sequence[str]) -> None:
        """Have a worker mirror these task rows into D1 (``workers.mirror``), when configured.

        Never raises for the broker: the rows are committed either way, and
        ``videofleet d1 sync`` catches up with a mirror that was not sent.
        """
        if self._d1_expiry_ms is None or not task_ids:
            return
        try:
            self._app.send_task(
                D1_MIRROR_TASK_NAME,
                args=(list(task_ids), now_ms() + self._d1_expiry_ms),
                queue=QUEUE,
                retry=True,
                retry_policy=PUBLISH_RETRY_POLICY,
            )
        except (OperationalError, OSError) as exc:
            logger.error("Tasks %s: D1 mirror not enqueued: %s", ",".join(task_ids), exc)

    def ping(self) -> None:
        """Check the broker connection (readiness)."""
        try:
            with self._app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1)
        except (OperationalError, OSError) as exc:
            raise BrokerUnavailable(f"broker unavailable: {exc}") from exc

    def close(self) -> None:
        """Release the broker connection pool."""
        self._app.close()

    def __enter__(self) -> ChainPublisher:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()
