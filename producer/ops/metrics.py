"""Prometheus metrics of the fleet, read from the database and the broker at scrape time.

Flower exports what the workers' events say (events, runtimes, workers online); what it cannot
know lives here: how many task rows are in each status, how deep the ``video-events`` queue is,
how long the oldest pending task has waited, how long recent steps took, and why tasks failed.
Nothing is counted in process memory, so any number of producers (or ``videofleet metrics``
beside the workers) report the same values, and a restart loses nothing.

Each scrape runs four small queries (one ``GROUP BY status``, one ``GROUP BY step, error
class`` over failed rows, one ``GROUP BY`` latest retry error class over retried rows, the
timings of tasks completed within ``METRICS_WINDOW_S``) and one Redis pipeline. A source that
cannot be read is reported as ``videofleet_source_up 0`` and its metrics are left out, so the
scrape itself still succeeds. On RabbitMQ the broker is read through passive queue declarations
(``producer.ops.rabbitdepth``): the queue depth, the delayed retries and the dead letters, but not
the unacked count, which AMQP does not report.
"""

from __future__ import annotations

import base64
import hmac
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import redis
import sqlalchemy as sa
from amqp.exceptions import AMQPError
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from kombu import Connection
from kombu.exceptions import OperationalError
from kombu.transport.redis import Channel
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry
from pydantic import SecretStr
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from producer.ops.rabbitdepth import read_depth
from producer.web.deps import ResourcesDep
from producer.web.ratelimit import client_ip
from schema.broker import BrokerKind, broker_kind
from schema.lanes import PRIORITY_STEPS, lane_of
from schema.message import QUEUE
from schema.metadata import ERROR_CLASS_KEY, LAST_RETRY_CLASS_KEY, TaskMetadata
from schema.status import STEPS, TaskStatus
from schema.tables import tasks

logger = logging.getLogger(__name__)

QUANTILES = (0.5, 0.9, 0.99)
# At most this many recently completed rows are read for step durations per scrape.
TIMINGS_SAMPLE_LIMIT = 2000
REDIS_TIMEOUT_S = 2.0  # also RabbitMQ's connect timeout
UNKNOWN = "unknown"
# The ``lane`` label of messages sent without a priority (the D1 mirror; priorities off).
NO_LANE = "none"
REALM = "videofleet metrics"
# Redis is read key by key; RabbitMQ through passive queue declarations.
Broker = redis.Redis | Connection


def queue_keys(queue: str) -> list[str]:
    """The Redis lists kombu keeps for ``queue``: the queue itself and one per priority step.

    kombu puts a message of priority ``p`` > 0 in ``<queue><sep><step>`` (``sep`` is
    ``"\\x06\\x16"``), with the steps of ``schema.lanes.PRIORITY_STEPS``, so a depth that reads
    only the plain list would miss them. The first key is the plain list (priority 0).
    """
    return [queue] + [f"{queue}{Channel.sep}{step}" for step in PRIORITY_STEPS if step]


def lane_depths(lengths: Sequence[int]) -> dict[str, int]:
    """Messages per lane from the lengths of ``queue_keys`` (same order); pure."""
    depths: dict[str, int] = defaultdict(int)
    for step, length in zip(PRIORITY_STEPS, lengths, strict=True):
        lane = lane_of(step)
        depths[NO_LANE if lane is None else lane.value] += length
    return dict(depths)


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile of already sorted values (at least one)."""
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def step_durations(metadata_docs: Sequence[TaskMetadata]) -> dict[str, list[float]]:
    """Sorted durations per step (and ``total``) from the rows' ``metadata.timings_s``."""
    durations: dict[str, list[float]] = defaultdict(list)
    for doc in metadata_docs:
        for step, seconds in doc.timings_s.items():
            durations[step].append(seconds)
    return {step: sorted(values) for step, values in durations.items()}


def _metadata_key(engine: Engine, name: str) -> sa.ColumnElement[Any]:
    # metadata is JSON in a TEXT column: each database reads a key from it its own way.
    if engine.dialect.name == "postgresql":
        document = sa.cast(tasks.c.metadata, postgresql.JSONB)
        key: sa.ColumnElement[Any] = document[name].astext
        return key
    if engine.dialect.name == "sqlite":
        return sa.func.json_extract(tasks.c.metadata, f"$.{name}")
    return sa.null()


class FleetCollector(Collector):
    """Reads the fleet's state when Prometheus scrapes; holds no counters of its own."""

    def __init__(
        self,
        engine: Engine,
        broker: Broker,
        *,
        window_s: int,
        queue: str = QUEUE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._broker = broker
        self._window_s = window_s
        self._queue = queue
        self._clock = clock

    def describe(self) -> list[Metric]:
        # Registering must not query anything; the metrics are only known at collect time.
        return []

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "videofleet_source_up", "Whether the source could be read", labels=["source"]
        )
        try:
            database = list(self._database_metrics())
        except SQLAlchemyError as exc:
            logger.warning("Metrics: database unreadable: %s", exc.__class__.__name__)
            up.add_metric(["database"], 0)
        else:
            up.add_metric(["database"], 1)
            yield from database
        try:
            broker = list(self._broker_metrics())
        except (redis.RedisError, OperationalError, AMQPError, OSError) as exc:
            logger.warning("Metrics: broker unreadable: %s", exc.__class__.__name__)
            up.add_metric(["broker"], 0)
        else:
            up.add_metric(["broker"], 1)
            yield from broker
        yield up

    def _database_metrics(self) -> Iterator[Metric]:
        now_ms = int(self._clock() * 1000)
        with self._engine.connect() as conn:
            by_status = conn.execute(
                sa.select(
                    tasks.c.status,
                    sa.func.count(),
                    sa.func.coalesce(sa.func.sum(tasks.c.retry_count), 0),
                    sa.func.min(tasks.c.updated_at),
                ).group_by(tasks.c.status)
            ).all()
            error_class = _metadata_key(self._engine, ERROR_CLASS_KEY).label("error_class")
            failures = conn.execute(
                sa.select(tasks.c.step, error_class, sa.func.count())
                .where(tasks.c.status == TaskStatus.FAILED.value)
                .group_by(tasks.c.step, error_class)
            ).all()
            retry_class = _metadata_key(self._engine, LAST_RETRY_CLASS_KEY).label("retry_class")
            retried = conn.execute(
                sa.select(retry_class, sa.func.sum(tasks.c.retry_count))
                .where(tasks.c.retry_count > 0)
                .group_by(retry_class)
            ).all()
            recent = conn.execute(
                sa.select(tasks.c.metadata)
                .where(
                    tasks.c.status == TaskStatus.COMPLETED.value,
                    tasks.c.updated_at >= now_ms - self._window_s * 1000,
                )
                .order_by(tasks.c.updated_at.desc())
                .limit(TIMINGS_SAMPLE_LIMIT)
            ).all()
        yield from self._status_metrics(by_status, now_ms)
        failed = GaugeMetricFamily(
            "videofleet_failed_tasks",
            "Failed task rows by the step that failed and the error's class",
            labels=["step", "error_class"],
        )
        for step, cls, count in failures:
            failed.add_metric([step or UNKNOWN, cls or UNKNOWN], count)
        yield failed
        retries = GaugeMetricFamily(
            "videofleet_task_retries_by_error_class",
            "Retries spent by task rows, by the class of each row's latest retry error",
            labels=["error_class"],
        )
        for cls, count in retried:
            retries.add_metric([cls or UNKNOWN], count)
        yield retries
        yield from self._duration_metrics([r.metadata for r in recent])

    def _status_metrics(self, by_status: Sequence[Any], now_ms: int) -> Iterator[Metric]:
        counts = {s.value: 0 for s in TaskStatus}
        retries = {s.value: 0 for s in TaskStatus}
        oldest_pending_ms: int | None = None
        for status, count, retry_sum, oldest in by_status:
            counts[status] = count
            retries[status] = int(retry_sum)
            if status == TaskStatus.PENDING.value:
                oldest_pending_ms = oldest
        tasks_gauge = GaugeMetricFamily(
            "videofleet_tasks", "Task rows in each status", labels=["status"]
        )
        retries_gauge = GaugeMetricFamily(
            "videofleet_task_retries",
            "Retries spent by the task rows in each status (sum of retry_count)",
            labels=["status"],
        )
        for status in counts:
            tasks_gauge.add_metric([status], counts[status])
            retries_gauge.add_metric([status], retries[status])
        yield tasks_gauge
        yield retries_gauge
        age_s = 0.0 if oldest_pending_ms is None else max(0, now_ms - oldest_pending_ms) / 1000
        yield GaugeMetricFamily(
            "videofleet_oldest_pending_task_age_seconds",
            "How long the task row pending the longest has waited (0 when none is pending)",
            value=age_s,
        )

    def _duration_metrics(self, docs: Sequence[TaskMetadata]) -> Iterator[Metric]:
        durations = step_durations(docs)
        quantiles = GaugeMetricFamily(
            "videofleet_step_duration_seconds",
            f"Step durations of tasks completed in the last {self._window_s} s, by quantile",
            labels=["step", "quantile"],
        )
        samples = GaugeMetricFamily(
            "videofleet_step_duration_samples",
            f"Completed steps the duration quantiles are computed from ({self._window_s} s)",
            labels=["step"],
        )
        for step in [*(s.value for s in STEPS), "total"]:
            values = durations.get(step, [])
            samples.add_metric([step], len(values))
            for q in QUANTILES if values else ():
                quantiles.add_metric([step, str(q)], quantile(values, q))
        yield quantiles
        yield samples

    def _broker_metrics(self) -> Iterator[Metric]:
        if isinstance(self._broker, Connection):
            yield from self._rabbitmq_metrics(self._broker)
            return
        pipe = self._broker.pipeline(transaction=False)
        for key in queue_keys(self._queue):
            pipe.llen(key)
        pipe.hlen(Channel.unacked_key)
        *lengths, unacked = pipe.execute()
        depth = GaugeMetricFamily(
            "videofleet_queue_messages",
            "Messages waiting in the broker queue (all priority levels)",
            labels=["queue"],
        )
        depth.add_metric([self._queue], sum(lengths))
        yield depth
        by_lane = GaugeMetricFamily(
            "videofleet_queue_lane_messages",
            "Messages waiting in the broker queue per priority lane (see docs/scaling.md)",
            labels=["queue", "lane"],
        )
        for lane, count in sorted(lane_depths(lengths).items()):
            by_lane.add_metric([self._queue, lane], count)
        yield by_lane
        yield GaugeMetricFamily(
            "videofleet_broker_unacked_messages",
            "Messages delivered to workers and not yet acknowledged (running or waiting to retry)",
            value=unacked,
        )

    def _rabbitmq_metrics(self, conn: Connection) -> Iterator[Metric]:
        # RabbitMQ counts unacknowledged messages only in its management API: see rabbitdepth.
        depth = read_depth(conn, queue=self._queue)
        queued = GaugeMetricFamily(
            "videofleet_queue_messages",
            "Messages waiting in the broker queue (all priority levels)",
            labels=["queue"],
        )
        queued.add_metric([self._queue], depth.ready)
        yield queued
        yield GaugeMetricFamily(
            "videofleet_broker_delayed_messages",
            "RabbitMQ: retries and countdowns waiting out their delay in the delayed queues",
            value=depth.delayed,
        )
        yield GaugeMetricFamily(
            "videofleet_dead_letter_messages",
            "RabbitMQ: messages over the delivery limit not yet failed by `videofleet recover`",
            value=depth.dead,
        )


def broker_client(broker_url: str) -> Broker:
    """A Redis client for a Redis broker, a (lazily connected) kombu connection for RabbitMQ."""
    if broker_kind(broker_url) is BrokerKind.RABBITMQ:
        return Connection(broker_url, connect_timeout=REDIS_TIMEOUT_S)
    return redis.Redis.from_url(
        broker_url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
    )


def render(
    engine: Engine, broker_url: str, *, window_s: int, accept: str = "", queue: str = QUEUE
) -> tuple[bytes, str]:
    """One scrape: the fleet's metrics in the format ``accept`` asks for, and its content type.

    Prometheus' text format by default; OpenMetrics when the scraper's Accept header asks.
    """
    broker = broker_client(broker_url)
    try:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(FleetCollector(engine, broker, window_s=window_s, queue=queue))
        encoder, content_type = choose_encoder(accept)
        return encoder(registry), content_type
    finally:
        broker.close()


def require_scraper(resources: ResourcesDep, request: Request) -> None:
    """FastAPI dependency: 404 when ``METRICS_ON_API=false``; basic auth when configured.

    Wrong credentials count as failed logins of the client IP (``LoginThrottle``, 429 beyond).
    """
    settings = resources.settings
    if not settings.metrics_on_api:
        raise HTTPException(404, "Not Found")
    if settings.metrics_basic_auth is None:
        return
    ip = client_ip(request, settings)
    throttle = resources.logins.metrics
    throttle.check(ip)
    header = request.headers.get("authorization")
    if header is not None and _basic_auth_ok(header, settings.metrics_basic_auth):
        return
    if header is not None:
        throttle.count_failure(ip)
    raise HTTPException(
        401, "metrics credentials required", headers={"WWW-Authenticate": f'Basic realm="{REALM}"'}
    )


def _basic_auth_ok(header: str, configured: SecretStr) -> bool:
    scheme, _, encoded = header.strip().partition(" ")
    try:
        presented = base64.b64decode(encoded, validate=True)
    except ValueError:
        return False
    # Every configured pair is compared, always, in constant time.
    matches = [
        hmac.compare_digest(presented, pair.encode())
        for pair in configured.get_secret_value().split(",")
    ]
    return scheme.lower() == "basic" and any(matches)


router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response, dependencies=[Depends(require_scraper)])
def metrics(resources: ResourcesDep, request: Request) -> Response:
    """Prometheus scrape endpoint: task rows by status, queue depth, step durations, failures."""
    body, content_type = render(
        resources.engine,
        resources.settings.broker_url,
        window_s=resources.settings.metrics_window_s,
        accept=request.headers.get("accept", ""),
    )
    return Response(content=body, headers={"Content-Type": content_type})
