"""The bucket poller: notifications for S3-compatible stores that send none (and the local demo).

It lists the objects under a prefix and emits an ``ObjectEvent`` (source ``poller``) for each new
object version into ``ingest``, then stores how far it got, so a restart neither re-emits nor
skips.

**Why a LastModified watermark plus a seen set, and not "the last key processed".** A last-key
watermark (``StartAfter=<last key>``) only works when keys arrive in key order. Upload keys do
not: ``uploads/zebra.mp4`` may land before ``uploads/apple.mp4``, and a key-ordered watermark
would skip ``apple`` for ever. So every cycle lists the whole prefix (paging with ``StartAfter``,
which, unlike a continuation token, can be stored and resumed after a restart) and emits the
objects that are

- modified at or after ``since_ms`` (the watermark), and
- not in ``seen``, the ``key → (eTag, LastModified)`` already emitted at or after it (a new eTag
  under a known key is a new version and is emitted).

At the end of a full scan the watermark moves to ``max(LastModified seen) - POLL_LOOKBACK_S`` and
``seen`` drops the entries older than it (entries the scan has passed are dropped page by page),
so the state stays as small as the uploads of one lookback window. The first run has no
watermark and ingests every object under the prefix; ingest is idempotent, so objects that
already have a task come back as ``duplicate``.

The lookback absorbs what makes LastModified arrive out of order: clock skew, one-second
resolution, listings that lag behind writes, and multipart uploads, whose LastModified is the
time the upload *started* (a large video can finish long after smaller ones that started later).
An object whose LastModified is older than the watermark when it first appears in a listing is
missed; make the lookback longer than your longest upload.

State is written after each page, in the same order as the page was ingested: a restart resumes
the unfinished scan at the stored ``scan_cursor``. A crash between ingesting a page and storing
the state emits that page again; ingest is idempotent, so that costs a ``duplicate`` outcome and
never a second chain. The poller sees objects, not deletions: deletes need notifications.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from producer.events.ingest import Publisher, ingest
from producer.events.rules import EventRules
from schema.db import insert_ignoring_conflicts
from schema.errors import DatabaseUnavailable, StorageUnavailable, TransientError
from schema.lanes import Lane
from schema.lifecycle import now_ms
from schema.message import Action, ObjectEvent
from schema.tables import poller_watermarks

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectTypeDef

logger = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 1000


@dataclass
class Watermark:
    """The stored progress of one (bucket, prefix)."""

    since_ms: int = 0
    scan_cursor: str | None = None
    scan_max_ms: int = 0
    seen: dict[str, tuple[str, int]] = field(default_factory=dict)

    def is_new(self, key: str, etag: str, modified_ms: int) -> bool:
        """Whether this object version has not been emitted yet."""
        if modified_ms < self.since_ms:
            return False
        known = self.seen.get(key)
        return known is None or known[0] != etag

    def forget_behind(self, lookback_ms: int) -> None:
        """Drop entries this scan has passed that the next watermark will exclude anyway.

        Only keys up to the cursor: a key after it is still to be listed in this scan, and its
        entry is what keeps it from being emitted twice. The next watermark is at least
        ``scan_max_ms - lookback_ms``, so older entries behind the cursor can never matter again;
        this keeps a first scan of a large bucket from carrying every key in ``seen``.
        """
        if self.scan_cursor is None:
            return
        horizon = self.scan_max_ms - lookback_ms
        cursor = self.scan_cursor
        self.seen = {k: v for k, v in self.seen.items() if v[1] >= horizon or k > cursor}

    def finish_scan(self, lookback_ms: int) -> None:
        """Advance the watermark after a full scan and forget what fell behind it."""
        if self.scan_max_ms:
            self.since_ms = max(self.since_ms, self.scan_max_ms - lookback_ms)
        self.seen = {k: v for k, v in self.seen.items() if v[1] >= self.since_ms}
        self.scan_cursor = None
        self.scan_max_ms = 0


@dataclass
class ScanReport:
    """What one scan (or part of one, when stopped) did."""

    pages: int = 0
    listed: int = 0
    emitted: int = 0
    results: Counter[str] = field(default_factory=Counter)
    finished: bool = False


class Poller:
    """Lists ``bucket``/``prefix`` and feeds new object versions to ``ingest``."""

    def __init__(
        self,
        *,
        engine: Engine,
        publisher: Publisher,
        storage: S3Client,
        bucket: str,
        prefix: str,
        rules: EventRules,
        lookback_s: int,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        self._engine = engine
        self._publisher = publisher
        self._storage = storage
        self._bucket = bucket
        self._prefix = prefix
        self._rules = rules
        self._lookback_ms = lookback_s * 1000
        self._page_size = page_size
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the poller to exit after the page it is on (safe from a signal handler)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Whether ``stop`` was called."""
        return self._stop.is_set()

    def run(self, *, interval_s: float, once: bool = False) -> None:
        """Scan every ``interval_s`` until stopped; with ``once``, one full scan and return.

        A transient failure (storage, database, broker) ends the cycle; the next cycle resumes
        from the stored state. With ``once`` it is raised instead.
        """
        while not self.stopping:
            try:
                report = self.scan()
            except TransientError as exc:
                if once:
                    raise
                logger.warning(
                    "Poller %s/%s: cycle failed, retrying: %s", self._bucket, self._prefix, exc
                )
            else:
                logger.info(
                    "Poller %s/%s: %d pages, %d listed, %d emitted %s",
                    self._bucket,
                    self._prefix,
                    report.pages,
                    report.listed,
                    report.emitted,
                    dict(report.results),
                )
                if once and report.finished:
                    return
            if self._stop.wait(interval_s):
                return

    def scan(self) -> ScanReport:
        """Continue (or start) a scan of the prefix up to its end, or until stopped.

        Raises:
            StorageUnavailable: listing failed (nothing of that page was emitted).
            DatabaseUnavailable: the state could not be read or written.
            BrokerUnavailable: a chain could not be published (the page is retried next cycle).
        """
        state = self.load()
        report = ScanReport()
        while True:
            page, truncated = self._list(state.scan_cursor)
            report.pages += 1
            report.listed += len(page)
            new = [o for o in page if state.is_new(*_version(o))]
            if new:
                outcomes = ingest(
                    self._engine,
                    self._publisher,
                    [self._event(o) for o in new],
                    rules=self._rules,
                    storage=self._storage,
                    lane=Lane.BULK,
                )
                report.emitted += len(new)
                report.results.update(o.result.value for o in outcomes)
            for obj in page:
                key, etag, modified_ms = _version(obj)
                state.scan_max_ms = max(state.scan_max_ms, modified_ms)
                if state.is_new(key, etag, modified_ms):
                    state.seen[key] = (etag, modified_ms)
            if page:
                state.scan_cursor = page[-1]["Key"]
            if truncated:
                state.forget_behind(self._lookback_ms)
            else:
                state.finish_scan(self._lookback_ms)
                report.finished = True
            self.save(state)
            if report.finished or self.stopping:
                return report

    def _list(self, start_after: str | None) -> tuple[list[ObjectTypeDef], bool]:
        kwargs: dict[str, Any] = {
            "Bucket": self._bucket,
            "Prefix": self._prefix,
            "MaxKeys": self._page_size,
        }
        if start_after is not None:
            kwargs["StartAfter"] = start_after
        try:
            response = self._storage.list_objects_v2(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnavailable(
                f"storage error listing {self._bucket}/{self._prefix}: {exc}",
                video_key=self._prefix,
            ) from exc
        return list(response.get("Contents", [])), bool(response.get("IsTruncated"))

    def _event(self, obj: ObjectTypeDef) -> ObjectEvent:
        key, etag, modified_ms = _version(obj)
        return ObjectEvent(
            bucket=self._bucket,
            key=key,
            action=Action.CREATED,
            size=obj.get("Size"),
            etag=etag,
            event_time=datetime.fromtimestamp(modified_ms / 1000, UTC).isoformat(),
            source="poller",
        )

    def load(self) -> Watermark:
        """Read the stored state; a first run starts from nothing (every object is new)."""
        try:
            with self._engine.connect() as conn:
                row = conn.execute(
                    sa.select(poller_watermarks).where(
                        poller_watermarks.c.bucket == self._bucket,
                        poller_watermarks.c.prefix == self._prefix,
                    )
                ).one_or_none()
        except (OperationalError, InterfaceError) as exc:
            raise DatabaseUnavailable(f"database unavailable: {exc.__class__.__name__}") from exc
        if row is None:
            return Watermark()
        seen = {k: (str(v[0]), int(v[1])) for k, v in json.loads(row.seen).items()}
        return Watermark(row.since_ms, row.scan_cursor, row.scan_max_ms, seen)

    def save(self, state: Watermark) -> None:
        """Store the state (insert or update the row of this bucket and prefix)."""
        values = {
            "since_ms": state.since_ms,
            "scan_cursor": state.scan_cursor,
            "scan_max_ms": state.scan_max_ms,
            "seen": json.dumps({k: list(v) for k, v in sorted(state.seen.items())}),
            "updated_at": now_ms(),
        }
        try:
            with self._engine.begin() as conn:
                inserted = insert_ignoring_conflicts(
                    conn,
                    poller_watermarks,
                    {"bucket": self._bucket, "prefix": self._prefix, **values},
                    conflict_columns=("bucket", "prefix"),
                )
                if not inserted:
                    conn.execute(
                        sa.update(poller_watermarks)
                        .where(
                            poller_watermarks.c.bucket == self._bucket,
                            poller_watermarks.c.prefix == self._prefix,
                        )
                        .values(**values)
                    )
        except (OperationalError, InterfaceError) as exc:
            raise DatabaseUnavailable(f"database unavailable: {exc.__class__.__name__}") from exc


def _version(obj: ObjectTypeDef) -> tuple[str, str, int]:
    """(key, eTag without quotes, LastModified in epoch ms) of a listed object."""
    modified = obj["LastModified"]
    return obj["Key"], obj.get("ETag", "").strip('"'), int(modified.timestamp() * 1000)
