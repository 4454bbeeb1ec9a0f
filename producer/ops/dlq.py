"""Dead letters on RabbitMQ: a step whose message killed its worker too often fails its row.

A message that crashes every worker process taking it (a decoder segfault, the kernel's OOM
killer) is requeued each time it is lost. ``video-events`` is a quorum queue with a delivery
limit (``BROKER_DELIVERY_LIMIT``), so RabbitMQ stops the loop and moves the message to
``video-events.dead``. Nothing in a worker runs for it again, so its row would stay
``processing`` until recovery republished it, to be killed again: instead each ``videofleet
recover`` sweep first drains the dead-letter queue and fails each row with the reason, which
``videofleet tasks`` shows and the metrics count (``error_class`` ``DeliveryLimitExceeded``).

A row that already ended is left as it is. A letter is acknowledged only after its row is
written, so a database outage leaves it in the queue for the next sweep. On Redis there is no
delivery limit (a message held by a dead worker returns after the visibility timeout, without
a count) and nothing to drain.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from amqp.exceptions import AMQPError
from kombu import Connection
from kombu.exceptions import OperationalError
from kombu.message import Message
from sqlalchemy.engine import Engine

from schema.broker import (
    DEAD_LETTER_ERROR_CLASS,
    BrokerKind,
    broker_kind,
    dead_letter_queue,
)
from schema.errors import BrokerUnavailable, IllegalTransition
from schema.lifecycle import now_ms, transition
from schema.message import TASK_NAMES
from schema.metadata import TaskMetadata
from schema.settings import Settings
from schema.status import Step, TaskStatus, VideoStatus
from schema.tables import tasks, videos

logger = logging.getLogger(__name__)

# Letters handled per sweep at most, so that one sweep stays short.
MAX_LETTERS_PER_SWEEP = 1000
_STEP_OF_TASK = {name: step for step, name in TASK_NAMES.items()}


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead-lettered step message, as the broker returned it."""

    task_name: str
    task_id: str | None
    death: str

    @property
    def step(self) -> Step | None:
        """The workflow step the message ran, or None for another task (the webhook's)."""
        return _STEP_OF_TASK.get(self.task_name)

    @property
    def reason(self) -> str:
        """The row's error message: which step, and why it will not run again."""
        step = self.step.value if self.step else self.task_name
        return f"{step}: dead-lettered ({self.death}): the worker process was lost on each delivery"


def read_letter(headers: Mapping[str, Any], body: Any) -> DeadLetter:
    """The step and row of a Celery (protocol 2) message RabbitMQ dead-lettered (pure).

    RabbitMQ says why in ``x-first-death-reason`` (``delivery_limit`` here; it resets
    ``x-delivery-count``, so the count itself is the queue's limit plus one); the row id is the
    step's only argument.
    """
    args = body[0] if isinstance(body, list | tuple) and body else ()
    task_id = str(args[0]) if isinstance(args, list | tuple) and args else None
    return DeadLetter(
        task_name=str(headers.get("task", "")),
        task_id=task_id,
        death=str(headers.get("x-first-death-reason") or "unknown reason"),
    )


def fail_row(engine: Engine, letter: DeadLetter) -> bool:
    """Fail the letter's row (and its video) with the reason; False when it already ended."""
    if letter.step is None or letter.task_id is None:
        return False
    with engine.begin() as conn:
        try:
            transition(
                conn,
                letter.task_id,
                TaskStatus.FAILED,
                step=letter.step.value,
                error_message=letter.reason,
                metadata_patch=TaskMetadata(error_class=DEAD_LETTER_ERROR_CLASS),
            )
        except IllegalTransition:
            return False
        video = sa.select(tasks.c.video_id).where(tasks.c.id == letter.task_id).scalar_subquery()
        conn.execute(
            sa.update(videos)
            .where(videos.c.id == video)
            .values(status=VideoStatus.FAILED.value, updated_at=now_ms())
        )
    return True


def drain(engine: Engine, settings: Settings) -> list[DeadLetter]:
    """Fail the row of every dead-lettered step message and acknowledge it; none on Redis.

    Raises:
        BrokerUnavailable: the broker could not be read (the letters stay for the next sweep).
    """
    if broker_kind(settings.broker_url) is BrokerKind.REDIS:
        return []
    letters: list[DeadLetter] = []
    try:
        with Connection(settings.broker_url) as conn:
            queue = dead_letter_queue()(conn.default_channel)
            queue.declare()
            while len(letters) < MAX_LETTERS_PER_SWEEP:
                message: Message | None = queue.get(no_ack=False, accept=["json"])
                if message is None:
                    break
                letter = read_letter(message.headers, message.decode())
                if fail_row(engine, letter):
                    logger.error("Task %s: %s", letter.task_id, letter.reason)
                else:
                    logger.error("Dead letter %s for %s dropped", letter.task_name, letter.task_id)
                message.ack()
                letters.append(letter)
    except (OperationalError, OSError, AMQPError) as exc:
        raise BrokerUnavailable(f"broker unavailable: {exc}") from exc
    return letters


__all__ = ["DeadLetter", "drain", "fail_row", "read_letter"]
