"""Rejected notifications: acknowledged so they are not redelivered forever, but never lost.

A message the producer cannot use (not JSON, an unknown format, a field of the wrong type) would
come back on every redelivery if it were left unacknowledged. Each transport therefore
acknowledges it and records it here: one row in ``rejected_events`` with the reason and the raw
body (truncated), a WARNING in the log, and a count per source.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from schema.db import insert_ignoring_conflicts
from schema.errors import DatabaseUnavailable
from schema.lifecycle import now_ms
from schema.tables import rejected_events

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
# Same message id from the same source (a redelivery) is one row.
_REJECTION_NAMESPACE = uuid.UUID("0b7d3c52-2f4e-4f0e-9a59-5d1c2c6e8a41")


@dataclass(frozen=True, slots=True)
class Rejection:
    """One unusable message, as a transport received it."""

    source: str
    reason: str
    body: bytes | str | None
    message_id: str | None = None

    @property
    def row_id(self) -> str:
        """Deterministic for a message id (redeliveries collapse), random otherwise."""
        if self.message_id:
            # A sender's id may hold lone surrogates, which uuid5 cannot encode as UTF-8.
            name = f"{self.source}\x00{_storable(self.message_id)}"
            return str(uuid.uuid5(_REJECTION_NAMESPACE, name))
        return str(uuid.uuid4())


def body_text(body: bytes | str | None) -> str | None:
    """The body as storable text: invalid UTF-8 escaped, NUL escaped, at most 64 KiB of UTF-8."""
    if body is None:
        return None
    text = body.decode("utf-8", errors="backslashreplace") if isinstance(body, bytes) else body
    text = _storable(text)
    encoded = text.encode("utf-8", errors="backslashreplace")
    if len(encoded) <= MAX_BODY_BYTES:
        return text
    return encoded[:MAX_BODY_BYTES].decode("utf-8", errors="ignore")


def _storable(text: str) -> str:
    # PostgreSQL TEXT cannot hold NUL, and lone surrogates cannot be encoded for the driver.
    text = text.replace("\x00", "\\x00")
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")


class RejectionLog:
    """Records rejections in batches and counts them per source for the process's lifetime."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.counts: Counter[str] = Counter()

    def record(self, rejections: Sequence[Rejection]) -> None:
        """Insert one row per rejection in a single transaction and log each at WARNING.

        Raises:
            DatabaseUnavailable: nothing was recorded; the caller must not acknowledge them.
        """
        if not rejections:
            return
        received_at = now_ms()
        rows: list[dict[str, Any]] = [
            {
                "id": r.row_id,
                "source": r.source,
                "reason": _storable(r.reason),
                "body": body_text(r.body),
                "message_id": _storable(r.message_id) if r.message_id else None,
                "received_at": received_at,
            }
            for r in rejections
        ]
        try:
            with self._engine.begin() as conn:
                insert_ignoring_conflicts(conn, rejected_events, rows, conflict_columns=("id",))
        except (OperationalError, InterfaceError) as exc:
            raise DatabaseUnavailable(f"database unavailable: {exc.__class__.__name__}") from exc
        for r in rejections:
            self.counts[r.source] += 1
            logger.warning(
                "Message %s from %s: rejected: %s", r.message_id or "-", r.source, r.reason
            )


def newest_rejections(engine: Engine, *, limit: int) -> list[Any]:
    """The ``limit`` most recent rejections, newest first."""
    query = (
        sa.select(rejected_events)
        .order_by(rejected_events.c.received_at.desc(), rejected_events.c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return list(conn.execute(query).all())
