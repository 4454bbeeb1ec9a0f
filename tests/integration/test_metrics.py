"""Prometheus metrics read from real PostgreSQL/SQLite rows and a real Redis broker."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx2
import pytest
import redis
from celery import Celery
from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from producer.dev import localstack
from producer.ops.metrics import FleetCollector, queue_keys
from producer.web import create_app
from schema.settings import Settings
from schema.tables import tasks
from tests.integration.conftest import Fleet, _free_port

pytestmark = pytest.mark.integration

NOW_S = 1_800_000_000.0
NOW_MS = int(NOW_S * 1000)
WINDOW_S = 3600


def _row(status: str, *, age_s: float, retries: int = 0, step: str | None = None, **meta: Any):
    return {
        "id": str(uuid.uuid4()),
        "video_key": f"uploads/{uuid.uuid4().hex}.mp4",
        "status": status,
        "created_at": NOW_MS - int(age_s * 1000) - 5000,
        "updated_at": NOW_MS - int(age_s * 1000),
        "retry_count": retries,
        "step": step,
        "metadata": json.dumps(meta) if meta else None,
    }


def _timings(validate: float, thumbs: float, update: float) -> dict[str, float]:
    return {
        "validate-video": validate,
        "generate-thumbnails": thumbs,
        "update-database": update,
        "total": validate + thumbs + update,
    }


KNOWN_ROWS = [
    _row("pending", age_s=120),
    _row("pending", age_s=30),
    _row(
        "processing",
        age_s=5,
        retries=1,
        step="generate-thumbnails",
        last_retry_class="StorageUnavailable",
    ),
    _row(
        "completed",
        age_s=60,
        retries=1,
        timings_s=_timings(1.0, 10.0, 0.1),
        last_retry_class="DatabaseUnavailable",
    ),
    _row("completed", age_s=600, timings_s=_timings(2.0, 20.0, 0.2)),
    # retried before last_retry_class was recorded
    _row("completed", age_s=1200, retries=2, timings_s=_timings(3.0, 30.0, 0.3)),
    # completed before the window: counted by status, not in the durations
    _row("completed", age_s=2 * WINDOW_S, timings_s=_timings(99.0, 99.0, 99.0)),
    _row("failed", age_s=10, step="validate-video", error_class="NotAVideo"),
    _row("failed", age_s=20, step="validate-video", error_class="NotAVideo"),
    _row(
        "failed",
        age_s=30,
        retries=3,
        step="generate-thumbnails",
        error_class="StorageUnavailable",
        last_retry_class="StorageUnavailable",
    ),
    # failed before error_class was recorded
    _row("failed", age_s=40, step="validate-video"),
]


def _scrape(collector: FleetCollector) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


@pytest.fixture
def queue(fleet: Fleet) -> Iterator[str]:
    """A queue of its own on the fleet's broker, which no worker consumes."""
    name = f"video-events-metrics-{uuid.uuid4().hex[:8]}"
    yield name
    client = redis.Redis.from_url(fleet.settings.broker_url)
    client.delete(*queue_keys(name))
    client.close()


def _publish(broker_url: str, queue: str, *, plain: int, priority_5: int) -> None:
    app = Celery(broker=broker_url, set_as_current=False)
    try:
        for n in range(plain + priority_5):
            app.send_task(
                "videofleet.validate_video",
                args=(f"t{n}",),
                queue=queue,
                priority=5 if n >= plain else None,
            )
    finally:
        app.close()


def test_metrics_match_a_known_set_of_rows_and_a_known_queue_length(
    fleet: Fleet, queue: str
) -> None:
    # given known task rows and 3 + 2 (priority 5) messages waiting in a queue
    with fleet.engine.begin() as conn:
        conn.execute(tasks.insert(), KNOWN_ROWS)
    _publish(fleet.settings.broker_url, queue, plain=3, priority_5=2)
    broker = redis.Redis.from_url(fleet.settings.broker_url)
    # when Prometheus scrapes
    collector = FleetCollector(
        fleet.engine, broker, window_s=WINDOW_S, queue=queue, clock=lambda: NOW_S
    )
    samples = _scrape(collector)
    broker.close()
    # then every value is the one the rows and the queue imply
    assert _value(samples, "videofleet_source_up", source="database") == 1
    assert _value(samples, "videofleet_source_up", source="broker") == 1
    expected = {"pending": 2, "processing": 1, "completed": 4, "failed": 4}
    for status, count in expected.items():
        assert _value(samples, "videofleet_tasks", status=status) == count
    expected_retries = {"pending": 0, "processing": 1, "completed": 3, "failed": 3}
    for status, count in expected_retries.items():
        assert _value(samples, "videofleet_task_retries", status=status) == count
    assert _value(samples, "videofleet_oldest_pending_task_age_seconds") == 120
    assert _value(samples, "videofleet_queue_messages", queue=queue) == 5
    assert _value(samples, "videofleet_broker_unacked_messages") >= 0
    failed = {
        (dict(labels)["step"], dict(labels)["error_class"]): value
        for (name, labels), value in samples.items()
        if name == "videofleet_failed_tasks"
    }
    assert failed == {
        ("validate-video", "NotAVideo"): 2,
        ("generate-thumbnails", "StorageUnavailable"): 1,
        ("validate-video", "unknown"): 1,
    }
    retried = {
        dict(labels)["error_class"]: value
        for (name, labels), value in samples.items()
        if name == "videofleet_task_retries_by_error_class"
    }
    assert retried == {"StorageUnavailable": 4, "DatabaseUnavailable": 1, "unknown": 2}
    durations = "videofleet_step_duration_seconds"
    assert _value(samples, "videofleet_step_duration_samples", step="generate-thumbnails") == 3
    assert _value(samples, durations, step="generate-thumbnails", quantile="0.5") == 20.0
    assert _value(samples, durations, step="generate-thumbnails", quantile="0.99") == 30.0
    assert _value(samples, durations, step="validate-video", quantile="0.5") == 2.0
    assert _value(samples, durations, step="total", quantile="0.9") == pytest.approx(33.3)


def test_priority_messages_land_in_the_sub_queues_the_depth_reads(fleet: Fleet, queue: str) -> None:
    # given two messages with priority 5 and none without
    _publish(fleet.settings.broker_url, queue, plain=0, priority_5=2)
    # then kombu put them in one of the priority lists the collector reads, not the plain one
    client = redis.Redis.from_url(fleet.settings.broker_url)
    lengths = [client.llen(key) for key in queue_keys(queue)]
    client.close()
    assert lengths[0] == 0
    assert sum(lengths) == 2


def test_an_unreachable_broker_is_reported_and_the_database_metrics_still_served(
    fleet: Fleet,
) -> None:
    # given a broker address where nothing listens
    with fleet.engine.begin() as conn:
        conn.execute(tasks.insert(), KNOWN_ROWS[:2])
    dead = redis.Redis(host="127.0.0.1", port=_free_port(), socket_connect_timeout=1)
    # when Prometheus scrapes
    samples = _scrape(FleetCollector(fleet.engine, dead, window_s=WINDOW_S, clock=lambda: NOW_S))
    # then the broker is reported down and the rows are still counted
    assert _value(samples, "videofleet_source_up", source="broker") == 0
    assert _value(samples, "videofleet_source_up", source="database") == 1
    assert _value(samples, "videofleet_tasks", status="pending") == 2
    assert not any(name == "videofleet_queue_messages" for name, _ in samples)


def test_producer_serves_the_metrics_in_prometheus_text_format(fleet: Fleet) -> None:
    # given the producer app on the fleet's database and broker, and known rows
    with fleet.engine.begin() as conn:
        conn.execute(tasks.insert(), KNOWN_ROWS)
    # when Prometheus scrapes GET /metrics, once plain and once asking for OpenMetrics
    with TestClient(create_app(fleet.settings)) as client:
        response = client.get("/metrics")
        openmetrics = client.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
    # then it gets the fleet's metrics in the text exposition format it asked for
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    by_status = {s.labels["status"]: s.value for s in families["videofleet_tasks"].samples}
    assert by_status == {"pending": 2, "processing": 1, "completed": 4, "failed": 4}
    assert "videofleet_queue_messages" in families


def test_metrics_on_the_api_can_take_basic_auth_or_be_turned_off(
    fleet: Fleet, limits_redis: tuple[str, str]
) -> None:
    redis_url, prefix = limits_redis
    values = {
        **fleet.settings.model_dump(),
        "rate_limit_redis_url": redis_url,
        "rate_limit_key_prefix": prefix,
        "rate_limit_admin_auth_failures_per_ip_per_hour": 3,
    }
    # given METRICS_BASIC_AUTH with two scrapers
    guarded = Settings.model_validate({**values, "metrics_basic_auth": "prom:s3cret-one,b:two"})
    with TestClient(create_app(guarded)) as client:
        # then no or wrong credentials are 401 with a challenge, each scraper's pair is let in
        anonymous = client.get("/metrics")
        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"] == 'Basic realm="videofleet metrics"'
        assert client.get("/metrics", auth=("prom", "s3cret-one")).status_code == 200
        assert client.get("/metrics", auth=("b", "two")).status_code == 200
        # and guessing is throttled like every login: 429 with Retry-After after 3 failures
        codes = [client.get("/metrics", auth=("prom", f"guess-{n}")).status_code for n in range(5)]
        assert codes == [401, 401, 401, 429, 429]
        assert int(client.get("/metrics", auth=("prom", "s3cret-one")).headers["Retry-After"]) > 0
    # given METRICS_ON_API=false (metrics served by `videofleet metrics` on their own address)
    off = Settings.model_validate({**values, "metrics_on_api": False})
    with TestClient(create_app(off)) as client:
        assert client.get("/metrics").status_code == 404


def test_a_real_workers_retries_and_failure_are_counted_by_error_class(
    fleet: Fleet, h264_mp4: Path
) -> None:
    # given a storage outage that outlasts the retries of a real worker
    body = fleet.upload(h264_mp4, "uploads/unreachable.mp4")
    fleet.s3_server.stop()
    [outcome] = fleet.deliver(body)
    row = fleet.wait(outcome.task_id)
    fleet.s3_server.start()
    assert row.status == "failed"
    # when Prometheus scrapes
    broker = redis.Redis.from_url(fleet.settings.broker_url)
    samples = _scrape(FleetCollector(fleet.engine, broker, window_s=WINDOW_S))
    broker.close()
    # then the failure and its three retries are attributed to the storage error
    assert _value(samples, "videofleet_tasks", status="failed") == 1
    labels = {"step": "validate-video", "error_class": "StorageUnavailable"}
    assert _value(samples, "videofleet_failed_tasks", **labels) == 1
    retries = "videofleet_task_retries_by_error_class"
    assert _value(samples, retries, error_class="StorageUnavailable") == row.retry_count == 3


def test_videofleet_metrics_serves_the_same_metrics_on_its_own_port(
    fleet: Fleet, tmp_path: Path
) -> None:
    # given known rows and `videofleet metrics` running on a free port
    with fleet.engine.begin() as conn:
        conn.execute(tasks.insert(), KNOWN_ROWS)
    port = _free_port()
    command = [sys.executable, "-c", "from producer.cli import main; main()", "metrics"]
    with ExitStack() as stack:
        localstack.spawn(
            stack, [*command, "--port", str(port)], log=tmp_path / "metrics.log", env=fleet.env
        )
        localstack.wait_listening("127.0.0.1", port, what="videofleet metrics")
        # when Prometheus scrapes it
        response = httpx2.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    # then it reports the rows like the producer does
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    by_status = {s.labels["status"]: s.value for s in families["videofleet_tasks"].samples}
    assert by_status == {"pending": 2, "processing": 1, "completed": 4, "failed": 4}
