"""The Cloudflare Queues HTTP pull consumer: pull a batch, ingest it once, ack it once.

Each round leases up to ``PULL_BATCH_SIZE`` messages, decodes and parses them, records the
unusable ones in ``rejected_events`` and ingests the rest in one ``ingest`` call, then sends ONE
ack call: ``acks`` for every accepted or rejected message, ``retries`` (delay growing with the
message's ``attempts``, at most 12 h) for those that met a database or broker outage. A message
is therefore never acknowledged before it is in the task table or recorded as rejected, and a
malformed one is never redelivered forever.

API trouble (429, 5xx, timeouts, connection errors) on any call, pull or ack, is waited out by
one ``Pacing`` per consumer: exponential backoff with full jitter from
``PULL_BACKOFF_INITIAL_S``, never shorter than the answer's ``Retry-After``, never longer than
``PULL_BACKOFF_MAX_S``, and reset by the next successful call. A failed ack is retried that way
until its leases expire (``PULL_VISIBILITY_TIMEOUT_MS`` after the pull; the messages then come
back and are found already ingested). An empty queue is polled with a pause that grows up to
``PULL_IDLE_MAX_S`` and resets when messages arrive. Setting the ``stop`` event
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

from producer.events.intake import Incoming, Intake, Verdict
from producer.transports.queues_api import (
    PulledMessage,
    QueueApiUnavailable,
    QueuesApi,
    decode_body,
)
from schema.errors import InvalidEvent, TransientError
from schema.settings import MAX_QUEUE_DELAY_S, Settings

logger = logging.getLogger(__name__)

SOURCE = "queue-pull"


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


class Pacing:
    """When the next API call may go out after trouble: backoff, ``Retry-After``, one cap.

    Every call waits for ``ready_in_s()``; a failure pushes it out by the next backoff delay or
    the answer's ``Retry-After``, whichever is longer, capped at ``max_s``; a success resets the
    backoff (a ``Retry-After`` already given still holds).
    """

    def __init__(
        self,
        backoff: Backoff,
        *,
        max_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backoff = backoff
        self._max_s = max_s
        self._clock = clock
        self._not_before = 0.0

    def failed(self, exc: QueueApiUnavailable) -> float:
        """Record a failed call; return how long to wait before the next one."""
        delay = self._backoff.next()
        if exc.retry_after_s is not None:
            delay = max(delay, exc.retry_after_s)
        delay = min(delay, self._max_s)
        self._not_before = max(self._not_before, self._clock() + delay)
        return delay

    def succeeded(self) -> None:
        """Record a successful call: the trouble is over."""
        self._backoff.reset()

    def ready_in_s(self) -> float:
        """Seconds until the next call may go out."""
        return max(0.0, self._not_before - self._clock())


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
        self._pacing = Pacing(
            Backoff(settings.pull_backoff_initial_s, settings.pull_backoff_max_s, jitter=True),
            max_s=settings.pull_backoff_max_s,
        )
        self._lease_s = settings.pull_visibility_timeout_ms / 1000
        self._idle = Backoff(settings.pull_idle_initial_s, settings.pull_idle_max_s, jitter=False)
        self.stats = PullStats()

    def run(self) -> None:
        """Consume until ``stop`` is set; the batch in hand is always finished and acknowledged.

        Raises:
            QueueApiRefused: the API refuses the token, account, queue or mode; retrying is futile.
        """
        while not self._stop.is_set():
            if self._stop.wait(self._pacing.ready_in_s()):
                break
            pulled_at = time.monotonic()
            try:
                messages = self._api.pull()
            except QueueApiUnavailable as exc:
                self.stats.api_errors += 1
                delay = self._pacing.failed(exc)
                logger.warning("Queue API unavailable, next pull in %.1f s: %s", delay, exc)
                continue
            self.stats.pulls += 1
            self._pacing.succeeded()
            if not messages:
                self._stop.wait(self._idle.next())
                continue
            self._idle.reset()
            self.handle(messages, leases_end=pulled_at + self._lease_s)

    def handle(self, messages: list[PulledMessage], *, leases_end: float | None = None) -> None:
        """Ingest one pulled batch and settle every lease in it with one ack call.

        ``leases_end`` (monotonic) is when the batch's leases expire: a failing ack call is
        retried until then; by default one visibility timeout from now.
        """
        if leases_end is None:
            leases_end = time.monotonic() + self._lease_s
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
        self._settle(acks, retries, leases_end=leases_end)

    def _settle(
        self, acks: list[str], retries: list[tuple[str, int]], *, leases_end: float
    ) -> None:
        # The leases stay valid until they expire, so a failed ack call is retried (paced, even
        # while stopping) until then; after that the messages come back and are ingested
        # again, which finds them already done.
        attempt = 0
        while True:
            time.sleep(self._pacing.ready_in_s())
            attempt += 1
            try:
                self._api.ack(acks, retries)
            except QueueApiUnavailable as exc:
                self.stats.api_errors += 1
                delay = self._pacing.failed(exc)
                if time.monotonic() + delay >= leases_end:
                    logger.error(
                        "Ack of %d leases gave up after %d tries, their leases expiring; they "
                        "will be redelivered and found already ingested: %s",
                        len(acks) + len(retries),
                        attempt,
                        exc,
                    )
                    return
                logger.warning(
                    "Ack of %d leases failed (try %d), again in %.1f s: %s",
                    len(acks),
                    attempt,
                    delay,
                    exc,
                )
                continue
            self._pacing.succeeded()
            logger.info("Batch settled: %d acked, %d retried", len(acks), len(retries))
            return


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
