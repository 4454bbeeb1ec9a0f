"""What every transport does with a batch of received messages: parse, reject, ingest once.

A transport (the pull consumer, the webhook) decodes its messages into ``Incoming`` values and
hands the whole batch to ``Intake.take``, which

1. parses each body with ``parse_body``; a body that does not parse, or names a bucket the
   fleet does not serve, is a *rejection*,
2. records the rejections in one transaction (``RejectionLog``),
3. calls ``ingest`` once for the events of all the other messages,

and reports a ``Verdict`` per message: ``accepted`` and ``rejected`` messages are done (the
transport acknowledges them), ``retry`` ones met a database or broker outage and must come back.
Nothing is acknowledged before it is either ingested or recorded as rejected.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

from producer.events.ingest import Outcome, Publisher, ingest
from producer.events.rejections import Rejection, RejectionLog
from producer.events.rules import EventRules
from producer.events.sources import parse_body
from schema.errors import InvalidEvent, TransientError
from schema.message import ObjectEvent

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)


class Verdict(StrEnum):
    """What became of one message."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    RETRY = "retry"


@dataclass(frozen=True, slots=True)
class Incoming:
    """One received message: its decoded body, or why it could not be decoded."""

    message_id: str | None
    raw: bytes | str | None
    body: Any = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class MessageResult:
    """The verdict on one message and, when accepted, the outcome of each of its events."""

    message_id: str | None
    verdict: Verdict
    outcomes: list[Outcome] = field(default_factory=list)
    reason: str | None = None


class Intake:
    """Parses, records rejections and ingests batches for one transport (``source``)."""

    def __init__(
        self,
        engine: Engine,
        publisher: Publisher,
        rejections: RejectionLog,
        *,
        source: str,
        rules: EventRules,
        storage: S3Client | None,
    ) -> None:
        self._engine = engine
        self._publisher = publisher
        self._rejections = rejections
        self._rules = rules
        self._storage = storage
        self.source = source

    def take(self, messages: Sequence[Incoming]) -> list[MessageResult]:
        """Process ``messages`` as one batch; the results are in the same order.

        Raises:
            DatabaseUnavailable: the rejections could not be recorded; nothing is done, the
                whole batch must come back.
        """
        parsed: dict[int, list[ObjectEvent]] = {}
        rejected: dict[int, Rejection] = {}
        for index, message in enumerate(messages):
            try:
                events = events_of(message)
                self._rules.refuse_foreign(events)
            except InvalidEvent as exc:
                rejected[index] = Rejection(self.source, str(exc), message.raw, message.message_id)
            else:
                parsed[index] = events
        self._rejections.record(list(rejected.values()))
        batch = [(messages[i].message_id, events) for i, events in parsed.items()]
        accepted = iter(self._ingest(batch))
        results: list[MessageResult] = []
        for index, message in enumerate(messages):
            if index in rejected:
                reason = rejected[index].reason
                results.append(MessageResult(message.message_id, Verdict.REJECTED, reason=reason))
            else:
                results.append(next(accepted))
        return results

    def _ingest(self, batch: list[tuple[str | None, list[ObjectEvent]]]) -> list[MessageResult]:
        events = [event for _, message_events in batch for event in message_events]
        try:
            outcomes = (
                ingest(
                    self._engine, self._publisher, events, rules=self._rules, storage=self._storage
                )
                if events
                else []
            )
        except TransientError as exc:
            logger.warning("Batch of %d from %s: will be retried: %s", len(batch), self.source, exc)
            return [MessageResult(mid, Verdict.RETRY, reason=str(exc)) for mid, _ in batch]
        results: list[MessageResult] = []
        start = 0
        for message_id, message_events in batch:
            end = start + len(message_events)
            results.append(MessageResult(message_id, Verdict.ACCEPTED, outcomes[start:end]))
            start = end
        return results


def events_of(message: Incoming) -> list[ObjectEvent]:
    """Parse one message into events; the sources refuse text no database can store.

    Raises:
        InvalidEvent: the message could not be decoded, matches no format, or names an object
            with text no database column can hold (NUL, unpaired surrogates).
    """
    if message.error is not None:
        raise InvalidEvent(message.error)
    return parse_body(message.body)
