"""Claim, publish, release: the one way a committed task row gets its chain sent.

Ingest, requeue and recovery all hand a row to the broker in the same three moves:

1. **claim**: commit the row ``pending`` under a fresh ``workflow_id`` (a compare-and-set, so of
   two processes claiming one row only one wins);
2. **publish** the chain from its start step, with the ``workflow_id`` as its root id;
3. on success **mark** the claim published (``step`` := the start step, where ingest left it
   empty); on a broker failure **release** the unsent claims (``workflow_id`` := NULL).

A row that is ``pending`` with a ``workflow_id`` but no ``step`` is therefore a claim whose
publish is not known to have happened: the process holding it may have been killed between the
commit and the publish. Such a claim is a *lease*: once it is older than
``producer.events.ingest.CLAIM_LEASE_S`` a redelivered notification may take it over and publish
the chain (``producer.events.ingest``). A released row (``pending``, no ``workflow_id``) is
claimable at once. Either way the recovery sweep (``producer.ops.recovery``) publishes any pending
row without a live chain after ``RECOVERY_PENDING_AFTER_S``, so no row depends on a redelivery.

None of these moves changes a status except the claim, which goes through
``schema.lifecycle.transition`` for rows that were not already pending.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from schema.errors import PartialPublish
from schema.lanes import Lane
from schema.lifecycle import now_ms
from schema.status import Step, TaskStatus
from schema.tables import tasks

logger = logging.getLogger(__name__)


class Publisher(Protocol):
    """What a hand-off needs from the broker side (``ChainPublisher`` in production).

    ``publish_many`` raises ``PartialPublish`` naming the chains sent before a failure.
    """

    def publish(self, task_id: str, *, workflow_id: str, start: Step = Step.VALIDATE) -> None: ...

    def publish_many(
        self,
        chains: Sequence[tuple[str, str]],
        *,
        start: Step = Step.VALIDATE,
        lanes: Mapping[str, Lane] | None = None,
    ) -> None: ...


def publish_claims(
    engine: Engine,
    publisher: Publisher,
    chains: Sequence[tuple[str, str]],
    *,
    start: Step = Step.VALIDATE,
    lanes: Mapping[str, Lane] | None = None,
) -> None:
    """Publish the committed claims ``(task_id, workflow_id)``; mark the sent, release the rest.

    ``lanes`` maps a task id to its lane (``ChainPublisher.publish_many``).

    Raises:
        PartialPublish: the broker failed; the claims not known to be sent were released.
    """
    if not chains:
        return
    try:
        publisher.publish_many(chains, start=start, lanes=lanes)
    except PartialPublish as exc:
        sent = set(exc.published)
        release(engine, [wf for task_id, wf in chains if task_id not in sent])
        mark_published(engine, [wf for task_id, wf in chains if task_id in sent], start=start)
        raise
    mark_published(engine, [wf for _, wf in chains], start=start)
    for task_id, workflow_id in chains:
        logger.info("Task %s: published chain %s from %s", task_id, workflow_id, start)


def mark_published(engine: Engine, workflow_ids: Sequence[str], *, start: Step) -> None:
    """Record that these claims' chains were sent: their ``step`` becomes the start step.

    Only rows still pending under that claim and without a step change (requeue and recovery
    set the step when they claim); a worker that already began has set its own step.
    """
    if not workflow_ids:
        return
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.update(tasks)
                .where(
                    tasks.c.workflow_id.in_(workflow_ids),
                    tasks.c.status == TaskStatus.PENDING.value,
                    tasks.c.step.is_(None),
                )
                .values(step=start.value)
            )
    except (OperationalError, InterfaceError) as exc:
        # Bookkeeping never decides an outcome: the chains are sent. Unmarked, a redelivery
        # after the lease may send a second chain, which finds the work done or redoes it.
        logger.warning("Could not mark %d published claim(s): %s", len(workflow_ids), exc)


def release(engine: Engine, workflow_ids: Sequence[str]) -> None:
    """Drop claims whose chains were not sent, so the next delivery or sweep publishes them.

    Guarded on the claim's own ``workflow_id``: a later claim by someone else is never undone.
    The status stays ``pending``: no worker can have seen a chain that was never sent.
    """
    if not workflow_ids:
        return
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.update(tasks)
                .where(
                    tasks.c.workflow_id.in_(workflow_ids),
                    tasks.c.status == TaskStatus.PENDING.value,
                )
                .values(workflow_id=None, updated_at=now_ms())
            )
    except (OperationalError, InterfaceError) as exc:
        # The claims then expire with their lease instead (a redelivery or the sweep).
        logger.warning("Could not release %d claim(s): %s", len(workflow_ids), exc)
        return
    logger.warning("Released %d claim(s) whose chains were not published", len(workflow_ids))


def unpublished_claim(claimed_before: sa.ColumnElement[int]) -> sa.ColumnElement[bool]:
    """The rows a new claim may take: pending and unclaimed, or claimed before ``claimed_before``
    (the lease expired) and never marked published.

    A claim whose publish was confirmed has a ``step``; one without is either being published
    right now (younger than the lease) or was abandoned by a process killed before publishing.
    """
    return sa.and_(
        tasks.c.status == TaskStatus.PENDING.value,
        sa.or_(
            tasks.c.workflow_id.is_(None),
            sa.and_(tasks.c.step.is_(None), tasks.c.updated_at < claimed_before),
        ),
    )
