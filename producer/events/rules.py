"""Which events the fleet acts on: pure decisions from the event and the configured filters.

Creates (R2 ``PutObject``/``CopyObject``/``CompleteMultipartUpload``, S3/MinIO
``ObjectCreated:*``) are processed, a copy as its destination object; deletes (R2
``DeleteObject``/``LifecycleDeletion``, ``ObjectRemoved:*``, ``LifecycleExpiration:*``) go to
delete handling. Both pass the same key filters first; only creates carry a size to check.
Objects under ``THUMBNAILS_PREFIX`` are never processed: the fleet writes them itself, and
processing them would feed the fleet its own output forever.

Only the served buckets (``INGEST_BUCKETS``, or ``S3_BUCKET`` alone) are acted on. An event
naming another bucket is not filtered but refused (``refuse_foreign``): every transport records
it in ``rejected_events``, since it is either a misrouted notification or someone trying to make
the fleet read a bucket with its credentials. ``decide`` ignores such an event too, for callers
that hand events to ``ingest`` directly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from schema.errors import InvalidEvent
from schema.message import Action, ObjectEvent
from schema.settings import (
    DEFAULT_INGEST_EXTENSIONS,
    DEFAULT_INGEST_MAX_SIZE_BYTES,
    Settings,
)


class Verdict(StrEnum):
    """What to do with one event."""

    PROCESS = "process"
    DELETE = "delete"
    IGNORE = "ignore"


@dataclass(frozen=True, slots=True)
class Decision:
    """A verdict and, for ``IGNORE``, the reason reported back to the sender."""

    verdict: Verdict
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class EventRules:
    """The configured filters (``INGEST_*`` and ``THUMBNAILS_PREFIX``); defaults match Settings.

    ``buckets`` empty (the default of a bare ``EventRules()``) checks no bucket; the rules a
    process runs with always name the served buckets.
    """

    buckets: tuple[str, ...] = ()
    key_prefix: str = ""
    extensions: tuple[str, ...] = DEFAULT_INGEST_EXTENSIONS
    min_size_bytes: int = 0
    max_size_bytes: int = DEFAULT_INGEST_MAX_SIZE_BYTES
    thumbnails_prefix: str = "thumbnails/"

    @classmethod
    def from_settings(cls, settings: Settings) -> EventRules:
        """The rules a process runs with."""
        return cls(
            buckets=settings.served_buckets,
            key_prefix=settings.ingest_key_prefix,
            extensions=tuple(e.lower() for e in settings.ingest_extensions),
            min_size_bytes=settings.ingest_min_size_bytes,
            max_size_bytes=settings.ingest_max_size_bytes,
            thumbnails_prefix=settings.thumbnails_prefix,
        )

    def refuse_foreign(self, events: Iterable[ObjectEvent]) -> None:
        """Refuse a notification that names a bucket the fleet does not serve.

        Raises:
            InvalidEvent: an event's bucket is not one of ``buckets``; the message names it.
        """
        for event in events:
            if not self._serves(event.bucket):
                raise InvalidEvent(
                    f"bucket {event.bucket!r} is not served here "
                    f"(INGEST_BUCKETS: {', '.join(self.buckets)})"
                )

    def decide(self, event: ObjectEvent) -> Decision:
        """Decide what ``event`` calls for; ``IGNORE`` always says why."""
        if not self._serves(event.bucket):
            return Decision(Verdict.IGNORE, f"bucket {event.bucket!r} is not served here")
        reason = self._key_reason(event.key)
        if reason is not None:
            return Decision(Verdict.IGNORE, reason)
        if event.action is Action.DELETED:
            return Decision(Verdict.DELETE)
        reason = self._size_reason(event.size)
        if reason is not None:
            return Decision(Verdict.IGNORE, reason)
        return Decision(Verdict.PROCESS)

    def _serves(self, bucket: str) -> bool:
        return not self.buckets or bucket in self.buckets

    def _key_reason(self, key: str) -> str | None:
        if self.thumbnails_prefix and key.startswith(self.thumbnails_prefix):
            return f"under the thumbnails prefix {self.thumbnails_prefix!r}"
        if not key.startswith(self.key_prefix):
            return f"outside the key prefix {self.key_prefix!r}"
        if self.extensions and not key.lower().endswith(self.extensions):
            return f"extension not one of {', '.join(self.extensions)}"
        return None

    def _size_reason(self, size: int | None) -> str | None:
        if size is None:
            return None  # unknown size (e.g. a notification without one): the worker checks
        if size < self.min_size_bytes:
            return f"{size} bytes is below the minimum of {self.min_size_bytes}"
        if size > self.max_size_bytes:
            return f"{size} bytes is above the maximum of {self.max_size_bytes}"
        return None
