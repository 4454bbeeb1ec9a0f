"""The Cloudflare Queues HTTP pull consumer: pull a batch, ingest it once, ack it once.

Each round leases up to ``PULL_BATCH_SIZE`` messages, decodes and parses them, records the
unusable ones in ``rejected_events`` and ingests the rest in one ``ingest`` call, then sends ONE
ack call: ``acks`` for every accepted or rejected message, ``retries`` (delay growing with the
message's ``attempts``, at most 12 h) for those that met a database or broker outage. A message
is therefore never acknowledged before it is in the task table or recorded as rejected, and a
malformed one is never redelivered forever.

API trouble (429, 5xx, timeouts, connection errors) is waited out with exponential backoff and
full jitter (a 429's ``Retry-After`` is honoured); an empty queue is polled with a pause that
grows up to ``PULL_IDLE_MAX_S`` and resets when messages arrive. Setting the ``stop`` event
(SIGTERM/SIGINT in ``videofleet pull``) lets the batch in hand finish and be acknowledged.
Several consumers may run at once, in one process (``run_together``, ``PULL_CONCURRENCY``) or
many: leases keep their batches apart, ingest is idempotent.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, fields

from producer.intake import Incoming, Intake, Verdict
from producer.queues_api import (
    PulledMessage,
    QueueApiUnavailable,
    QueuesApi,
    decode_body,
)
from schema.errors import InvalidEvent, TransientError
from schema.settings import MAX_QUEUE_DELAY_S, Settings

logger = logging.getLogger(__name__)

SOURCE = "queue-pull"
ACK_ATTEMPTS = 5


class Backoff:
    """A delay that doubles on each use up to ``max_s``, optionally with full jitter."""

    def __init__(
        self,
        initial_s: float,
        max_s: float,
        *,
        jitter: bool,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._initial_s = initial_s
        self._max_s = max_s
        self._jitter = jitter
        self._rng = rng
        self._current_s = initial_s

    def next(self) -> float:
        """The delay to wait now; the following one is twice as long (capped)."""
        delay = self._current_s
        self._current_s = min(self._current_s * 2, self._max_s)
        return delay * self._rng() if self._jitter else delay

    def reset(self) -> None:
        """Start again from the initial delay (the trouble is over)."""
        self._current_s = self._initial_s


def retry_delay_s(attempts: int, *, base_s: int, max_s: int = MAX_QUEUE_DELAY_S) -> int:
    """Exponential per-message retry delay: ``base_s * 2**(attempts-1)``, capped at ``max_s``."""
    exponent = min(max(attempts, 1) - 1, 32)
    return int(min(base_s * 2**exponent, max_s, MAX_QUEUE_DELAY_S))


@dataclass
class PullStats:
    """What a consumer did since it started."""

    pulls: int = 0
    messages: int = 0
    accepted: int = 0
    rejected: int = 0
    retried: int = 0
    api_errors: int = 0

    @classmethod
    def total(cls, many: Iterable[PullStats]) -> PullStats:
        """The sum of several consumers' stats."""
        many = list(many)
        return cls(**{f.name: sum(getattr(s, f.name) for s in many) for f in fields(cls)})


class PullConsumer:
    """Pulls, ingests and acknowledges batches until ``stop`` is set."""

    def __init__(
        self, settings: Settings, api: QueuesApi, intake: Intake, *, stop: threading.Event
    ) -> None:
        self._api = api
        self._intake = intake
        self._stop = stop
        self._retry_base_s = settings.pull_retry_delay_s
        self._retry_max_s = settings.pull_retry_delay_max_s
        self._backoff = Backoff(
            settings.pull_backoff_initial_s, settings.pull_backoff_max_s, jitter=True
        )
        self._backoff_max_s = settings.pull_backoff_max_s
        self._idle = Backoff(settings.pull_idle_initial_s, settings.pull_idle_max_s, jitter=False)
        self.stats = PullStats()

    def run(self) -> None:
        """Consume until ``stop`` is set; the batch in hand is always finished and acknowledged.

        Raises:
            QueueApiRefused: the API refuses the token, account, queue or mode; retrying is futile.
        """
        while not self._stop.is_set():
            try:
                messages = self._api.pull()
            except QueueApiUnavailable as exc:
                self._wait_out(exc)
                continue
            self.stats.pulls += 1
            self._backoff.reset()
            if not messages:
                self._stop.wait(self._idle.next())
                continue
            self._idle.reset()
            self.handle(messages)

    def handle(self, messages: list[PulledMessage]) -> None:
        """Ingest one pulled batch and settle every lease in it with one ack call."""
        self.stats.messages += len(messages)
        incoming = [_incoming(message) for message in messages]
        try:
            results = self._intake.take(incoming)
        except TransientError as exc:
            logger.warning("Batch of %d: retrying all: %s", len(messages), exc)
            verdicts = [Verdict.RETRY] * len(messages)
        else:
            verdicts = [result.verdict for result in results]
        acks: list[str] = []
        retries: list[tuple[str, int]] = []
        for message, verdict in zip(messages, verdicts, strict=True):
            if verdict is Verdict.RETRY:
                delay = retry_delay_s(
                    message.attempts, base_s=self._retry_base_s, max_s=self._retry_max_s
                )
                retries.append((message.lease_id, delay))
            else:
                acks.append(message.lease_id)
        self.stats.accepted += verdicts.count(Verdict.ACCEPTED)
        self.stats.rejected += verdicts.count(Verdict.REJECTED)
        self.stats.retried += len(retries)
        self._settle(acks, retries)

    def _settle(self, acks: list[str], retries: list[tuple[str, int]]) -> None:
        # The leases stay valid until the visibility timeout, so a failed ack call is retried a
        # few times even while stopping; if it still fails the messages come back and are
        # ingested again, which finds them already done.
        backoff = Backoff(0.2, 5.0, jitter=True)
        for attempt in range(1, ACK_ATTEMPTS + 1):
            try:
                self._api.ack(acks, retries)
            except QueueApiUnavailable as exc:
                self.stats.api_errors += 1
                logger.warning("Ack of %d leases failed (try %d): %s", len(acks), attempt, exc)
                time.sleep(backoff.next())
                continue
            logger.info("Batch settled: %d acked, %d retried", len(acks), len(retries))
            return
        logger.error(
            "Ack of %d leases gave up after %d tries; they will be redelivered after the "
            "visibility timeout and found already ingested",
            len(acks) + len(retries),
            ACK_ATTEMPTS,
        )

    def _wait_out(self, exc: QueueApiUnavailable) -> None:
        self.stats.api_errors += 1
        delay = self._backoff.next()
        if exc.retry_after_s is not None:
            delay = max(delay, min(exc.retry_after_s, self._backoff_max_s))
        logger.warning("Queue API unavailable, next pull in %.1f s: %s", delay, exc)
        self._stop.wait(delay)


def run_together(consumers: Sequence[PullConsumer], stop: threading.Event) -> PullStats:
    """Run ``consumers`` side by side in threads of this process until ``stop`` is set.

    Against Cloudflare each pull and ack is a round trip of tens of milliseconds in which a
    lone consumer sits idle; several keep several batches in flight while their ingests, mostly
    CPU, take turns. The first consumer to fail stops the others (each finishes the batch in
    hand) and its error is raised.

    Raises:
        QueueApiRefused: from any consumer; retrying is futile.
    """
    with ThreadPoolExecutor(len(consumers), thread_name_prefix="pull") as pool:
        running = [pool.submit(consumer.run) for consumer in consumers]
        done, _ = wait(running, return_when=FIRST_EXCEPTION)
        if any(future.exception() is not None for future in done):
            stop.set()
    for future in running:
        future.result()
    return PullStats.total(consumer.stats for consumer in consumers)


def _incoming(message: PulledMessage) -> Incoming:
    raw = message.body if isinstance(message.body, str) else json.dumps(message.body)
    try:
        body = decode_body(message)
    except InvalidEvent as exc:
        return Incoming(message.id, raw, error=str(exc))
    return Incoming(message.id, raw, body=body)
