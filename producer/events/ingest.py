"""From normalised events to task rows and published chains, idempotently and a batch at a time.

Order matters: (1) insert the rows and claim each unpublished one by giving it a fresh
``workflow_id`` with a compare-and-set, then commit, (2) publish the chain for each claim and
mark it published, or release it if the broker failed (``producer.events.handoff``). A row is thus
never published before it is committed, and two deliveries of the same event race on (1): only
one wins. A claim whose publish never happened (the producer was killed between the commit and
the publish) is a lease: a delivery arriving more than ``CLAIM_LEASE_S`` after the claim takes
it over and publishes the chain; one arriving sooner is a duplicate, as the claim's own
publish may still be on its way.

Per batch that is one ``INSERT ... ON CONFLICT (id) DO UPDATE SET workflow_id ... WHERE
<claimable> RETURNING id, workflow_id`` (PostgreSQL, and SQLite >= 3.35 which has
``RETURNING``), one broker pipeline for all chains and one ``UPDATE`` marking them published.
Rows are written in id order, so concurrent batches that share rows take their locks in the
same order.

Events first pass the rules (``producer.events.rules``): filtered events are reported ``ignored``
with a reason, and deletes go to ``producer.events.deletion``.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from producer.events.deletion import DeletionReport, handle_delete
from producer.events.handoff import Publisher, publish_claims, unpublished_claim
from producer.events.rules import Decision, EventRules, Verdict
from schema.errors import DatabaseUnavailable
from schema.lanes import Lane
from schema.lifecycle import now_ms
from schema.message import ObjectEvent
from schema.status import TaskStatus
from schema.tables import tasks, videos

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

# Per row, ingest offers these columns; the others of a new row are the same for the whole batch.
OFFERED = ("id", "video_key", "bucket", "etag", "workflow_id")
COMMON = ("status", "created_at", "updated_at", "retry_count")
# How long a claim's own publish may take before a redelivery may take the claim over: far
# longer than a publish (a pipeline, at most ~3 s of broker retries), and shorter than the
# 60 s after which Cloudflare Queues and the webhook forwarder deliver a message again.
CLAIM_LEASE_S = 30

__all__ = ["CLAIM_LEASE_S", "Outcome", "Publisher", "Result", "ingest"]


class Result(StrEnum):
    """What ingesting one event did."""

    PUBLISHED = "published"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result for one event, reported back to whoever delivered it."""

    task_id: str
    key: str
    result: Result
    workflow_id: str | None = None
    reason: str | None = None


def ingest(
    engine: Engine,
    publisher: Publisher,
    events: Iterable[ObjectEvent],
    *,
    rules: EventRules | None = None,
    storage: S3Client | None = None,
    lane: Lane = Lane.NORMAL,
) -> list[Outcome]:
    """Record and publish ``events``; safe to call again with any of them.

    Args:
        engine: the task database.
        publisher: sends the chains.
        events: one batch, in delivery order.
        rules: the filters (``EventRules.from_settings(settings)``); the defaults otherwise.
        storage: the bucket's client, needed to remove a deleted object's thumbnails and to
            recognise a stale delete; without it deletes only touch the database.
        lane: the lane of the chains (``schema.lanes``): ``normal`` for notifications,
            ``bulk`` for the poller; an object the upload API created goes ``interactive``.

    Raises:
        DatabaseUnavailable: the rows could not be written (nothing was published).
        BrokerUnavailable: a chain could not be published (the unpublished claims were released).
        StorageUnavailable: a delete could not check or clean the bucket (retry the batch).
    """
    events = list(events)
    rules = rules or EventRules()
    decisions = [rules.decide(e) for e in events]
    creates = _unique(
        e for e, d in zip(events, decisions, strict=True) if d.verdict is Verdict.PROCESS
    )
    try:
        # Read before anything is claimed: a failure here leaves no claim waiting out its lease.
        uploaded = _uploaded_keys(engine, creates)
        claims = _record_and_claim(engine, creates)
    except (OperationalError, InterfaceError) as exc:
        raise DatabaseUnavailable(f"database unavailable: {exc.__class__.__name__}") from exc
    publish_claims(engine, publisher, sorted(claims.items()), lanes=_lanes(creates, lane, uploaded))
    deleted: dict[tuple[str, str], DeletionReport] = {}
    for event, decision in zip(events, decisions, strict=True):
        if decision.verdict is Verdict.DELETE and (event.bucket, event.key) not in deleted:
            try:
                deleted[(event.bucket, event.key)] = handle_delete(
                    engine, storage, event, thumbnails_prefix=rules.thumbnails_prefix
                )
            except (OperationalError, InterfaceError) as exc:
                raise DatabaseUnavailable(
                    f"database unavailable: {exc.__class__.__name__}"
                ) from exc
    return [_outcome(e, d, claims, deleted) for e, d in zip(events, decisions, strict=True)]


def _uploaded_keys(engine: Engine, events: list[ObjectEvent]) -> set[str]:
    """The keys among ``events`` that the upload API created (a ``videos`` row with an owner).

    One indexed query per batch (``idx_videos_r2_key``): a person waits on those videos.
    """
    if not events:
        return set()
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(videos.c.r2_key).where(
                videos.c.r2_key.in_({e.key for e in events}), videos.c.owner.is_not(None)
            )
        )
        return {row.r2_key for row in rows}


def _lanes(events: list[ObjectEvent], lane: Lane, uploaded: set[str]) -> dict[str, Lane]:
    """Each event's lane: ``interactive`` for an uploaded key, ``lane`` otherwise."""
    return {e.task_id: Lane.INTERACTIVE if e.key in uploaded else lane for e in events}


def _unique(events: Iterable[ObjectEvent]) -> list[ObjectEvent]:
    unique: dict[str, ObjectEvent] = {}
    for event in events:
        unique.setdefault(event.task_id, event)
    return [unique[task_id] for task_id in sorted(unique)]


def _record_and_claim(engine: Engine, events: list[ObjectEvent]) -> dict[str, str]:
    """Insert new rows and claim unpublished ones in one upsert, commit; return the claims won.

    Every row is offered with a fresh ``workflow_id``. A new row takes it; an existing row takes
    it only while it is still pending and unclaimed, or its claim was never marked published
    and is older than ``CLAIM_LEASE_S`` (``producer.events.handoff.unpublished_claim``): that
    ``WHERE`` is the compare-and-set. Of two concurrent claims of a row, the second waits for the
    first to commit, re-checks, and no longer matches. ``RETURNING`` reports exactly the rows that
    took their offer.
    """
    if not events:
        return {}
    offers = [(e.task_id, e.key, e.bucket, e.etag, str(uuid.uuid4())) for e in events]
    now = now_ms()
    common = {
        "status": TaskStatus.PENDING.value,
        "created_at": now,
        "updated_at": now,
        "retry_count": 0,
    }
    lease = {"claimed_before": now - CLAIM_LEASE_S * 1000}
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            columns = {name: [offer[i] for offer in offers] for i, name in enumerate(OFFERED)}
            result = conn.execute(_postgres_upsert(), columns | common | lease)
        else:
            # A list of parameter sets: SQLAlchemy sends multi-row VALUES pages of one cached
            # statement ("insertmanyvalues"), results combined.
            rows = [dict(zip(OFFERED, offer, strict=True)) | common | lease for offer in offers]
            result = conn.execute(_claiming(_sqlite_insert(conn.dialect)), rows)
        return {row.id: row.workflow_id for row in result}


@functools.cache
def _postgres_upsert() -> sa.Executable:
    """``INSERT ... SELECT FROM unnest(arrays)``: one short statement whatever the batch size.

    psycopg parses and PostgreSQL plans it once (a multi-row ``VALUES`` is a new statement text
    per batch size, parsed anew each time: 3-4 times the CPU per row).
    """
    arrays = [sa.bindparam(name, type_=postgresql.ARRAY(sa.Text)) for name in OFFERED]
    offered = sa.func.unnest(*arrays).table_valued(*OFFERED).render_derived()
    rest = [sa.bindparam(name, type_=tasks.c[name].type) for name in COMMON]
    rows = sa.select(*(offered.c[name] for name in OFFERED), *rest)
    return _claiming(postgresql.insert(tasks).from_select([*OFFERED, *COMMON], rows))


def _sqlite_insert(dialect: sa.Dialect) -> sqlite.Insert:
    if dialect.name != "sqlite":
        raise NotImplementedError(f"unsupported database dialect {dialect.name!r}")
    if not dialect.insert_returning:
        # SQLite has RETURNING since 3.35 (2021); Python uses the one it was built with.
        raise NotImplementedError(
            f"SQLite {sqlite3.sqlite_version} has no INSERT ... RETURNING; "
            "videofleet needs SQLite >= 3.35 or PostgreSQL"
        )
    return sqlite.insert(tasks)


def _claiming(insert: postgresql.Insert | sqlite.Insert) -> sa.Executable:
    """``... ON CONFLICT (id) DO UPDATE SET workflow_id ... WHERE claimable RETURNING``."""
    claimed_before = sa.bindparam("claimed_before", type_=tasks.c.updated_at.type)
    return insert.on_conflict_do_update(
        index_elements=[tasks.c.id],
        set_={
            "workflow_id": insert.excluded.workflow_id,
            "updated_at": insert.excluded.updated_at,
        },
        where=unpublished_claim(claimed_before),
    ).returning(tasks.c.id, tasks.c.workflow_id)


def _outcome(
    event: ObjectEvent,
    decision: Decision,
    claims: dict[str, str],
    deleted: dict[tuple[str, str], DeletionReport],
) -> Outcome:
    """The outcome of one event; ``claims`` and ``deleted`` are consumed by their first event."""
    if decision.verdict is Verdict.IGNORE:
        return Outcome(event.task_id, event.key, Result.IGNORED, reason=decision.reason)
    if decision.verdict is Verdict.DELETE:
        report = deleted.pop((event.bucket, event.key), None)
        if report is None:
            return Outcome(event.task_id, event.key, Result.DUPLICATE, reason="same delete above")
        result = Result.IGNORED if report.stale else Result.DELETED
        return Outcome(event.task_id, event.key, result, reason=report.summary())
    workflow_id = claims.pop(event.task_id, None)
    if workflow_id is not None:
        return Outcome(event.task_id, event.key, Result.PUBLISHED, workflow_id)
    return Outcome(event.task_id, event.key, Result.DUPLICATE)
