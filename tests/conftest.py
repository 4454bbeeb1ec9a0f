"""Fixtures every test layer shares: generated media (ffmpeg) and the real services.

Each test starts from empty tables and an empty bucket; the worker processes (one per database)
live for the session. The service classes are in ``tests/fleet.py``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from producer.dev import localstack, samples
from producer.events.publish import ChainPublisher
from schema.db import make_engine
from schema.settings import Settings
from tests.access_keys import JwksServer, SigningKey
from tests.fleet import (
    BUCKET,
    POSTGRES_URL,
    REDIS_DBS,
    TEST_TUNING,
    Fleet,
    S3Server,
    _clean,
    _wait_worker_ready,
    own_database,
    rabbitmq_url,
    redis_url,
    redis_url_no_flush,
    reset_database,
)
from tests.integration.webhook_receiver import SECRET, WebhookReceiver

# The folder a test lives in is its layer; the layer's marker must say the same, so that
# ``-m "not integration and not e2e"`` selects exactly tests/unit.
LAYER_MARKERS = ("integration", "e2e", "faults")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse to run when a test's layer marker does not match its folder."""
    tests_dir = Path(__file__).resolve().parent
    wrong: set[str] = set()
    for item in items:
        try:
            module = item.path.resolve().relative_to(tests_dir)
        except ValueError:  # collected from outside tests/ (an explicit path): no layer
            continue
        expected = {marker for marker in LAYER_MARKERS if marker == module.parts[0]}
        present = {marker for marker in LAYER_MARKERS if item.get_closest_marker(marker)}
        if present != expected:
            wrong.add(f"tests/{module}: marked {sorted(present)}, its folder {sorted(expected)}")
    if wrong:
        raise pytest.UsageError(
            "layer markers do not match folders (set pytestmark in the module):\n  "
            + "\n  ".join(sorted(wrong))
        )


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        pytest.fail("ffmpeg and ffprobe must be installed (make install does it)")
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def h264_mp4(media_dir: Path) -> Path:
    """4 s of 320x240 H.264 + AAC at 25 fps, index at the front."""
    return samples.make_video(media_dir / "clip.mp4", seconds=4, size="320x240", rate=25)


@pytest.fixture(scope="session")
def long_gop_mp4(media_dir: Path) -> Path:
    """A video whose keyframes are far apart, so that its thumbnail step takes a while."""
    return samples.make_video(
        media_dir / "long-gop.mp4", seconds=40, size="640x360", rate=25, gop_frames=500
    )


@pytest.fixture(scope="session")
def not_a_video(media_dir: Path) -> Path:
    return samples.make_not_a_video(media_dir / "notes.mp4")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = S3Server()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    engine = make_engine(POSTGRES_URL)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL}: {exc}")
    finally:
        engine.dispose()
    return POSTGRES_URL


@pytest.fixture(scope="session")
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """The fleet's completion-webhook receiver: every ended task is POSTed here."""
    receiver = WebhookReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


# Each fleet is a database and a broker. Every test using ``fleet`` runs on the first two;
# the modules below also run on RabbitMQ (the broker-facing ones: publish, ingest, the chain,
# retries, dead workers), which keeps the suite's time within CI's limit. The metrics and
# recovery modules read Redis keys to set their scenes; RabbitMQ's side of both is in
# tests/integration/test_rabbitmq_broker.py.
FLEETS = ("postgresql", "sqlite")
RABBITMQ_FLEET = "rabbitmq"
RABBITMQ_MODULES = frozenset(
    {
        "tests.integration.test_fleet",
        "tests.integration.test_ingest",
        "tests.integration.test_event_ingest",
        "tests.integration.test_ingest_command",
        "tests.e2e.test_upload_page",
    }
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "fleet_service" in metafunc.fixturenames:
        fleets = list(FLEETS)
        if metafunc.module.__name__ in RABBITMQ_MODULES:
            fleets.append(RABBITMQ_FLEET)
        metafunc.parametrize("fleet_service", fleets, indirect=True, scope="session")


@pytest.fixture(scope="session")
def fleet_service(
    request: pytest.FixtureRequest,
    s3_server: S3Server,
    webhook_receiver: WebhookReceiver,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Fleet]:
    """A worker process on one database and broker: PostgreSQL or SQLite on Redis, or
    PostgreSQL (a database of its own) on RabbitMQ (a virtual host of its own)."""
    backend: str = request.param
    tmp = tmp_path_factory.mktemp(f"fleet-{backend}")
    if backend == "sqlite":
        db_url, broker_url = f"sqlite:///{tmp}/fleet.db", redis_url(REDIS_DBS[1])
    elif backend == RABBITMQ_FLEET:
        postgres = request.getfixturevalue("postgres_url")
        db_url, broker_url = own_database(postgres, RABBITMQ_FLEET), rabbitmq_url()
    else:
        db_url, broker_url = request.getfixturevalue("postgres_url"), redis_url(REDIS_DBS[0])
    env = {
        **os.environ,
        **TEST_TUNING,
        "DATABASE_URL": db_url,
        "BROKER_URL": broker_url,
        "S3_ENDPOINT_URL": s3_server.url,
        "S3_BUCKET": BUCKET,
        "COMPLETION_WEBHOOK_URL": webhook_receiver.url,
        "COMPLETION_WEBHOOK_SECRET": SECRET,
    }
    if backend == RABBITMQ_FLEET:
        # Rate limits keep their keys in Redis whichever the broker.
        env["RATE_LIMIT_REDIS_URL"] = redis_url_no_flush(REDIS_DBS[0])
    settings = Settings(
        **{k.lower(): v for k, v in env.items() if k.lower() in Settings.model_fields}
    )
    engine = reset_database(db_url)
    name = f"test-{backend}"
    with ExitStack() as stack:
        stack.callback(engine.dispose)
        worker = localstack.start_worker(stack, logdir=tmp, name=name, env=env)
        _wait_worker_ready(settings.broker_url, f"{name}@", tmp / f"{name}.log")
        publisher = stack.enter_context(ChainPublisher(settings))
        yield Fleet(settings, engine, publisher, env, tmp / f"{name}.log", s3_server, name)
        assert worker.poll() is None, "the worker process died during the session"


@pytest.fixture
def fleet(fleet_service: Fleet) -> Iterator[Fleet]:
    """The session's fleet with empty tables and an empty bucket, before and after the test."""
    _clean(fleet_service)
    yield fleet_service
    fleet_service.s3_server.start()
    _clean(fleet_service)


@pytest.fixture(scope="session")
def access_key() -> SigningKey:
    """The key the stand-in Access signs tokens with."""
    return SigningKey()


@pytest.fixture
def jwks(access_key: SigningKey) -> Iterator[JwksServer]:
    """The team's certs endpoint over real HTTP, serving ``access_key`` (fresh per test)."""
    with JwksServer([access_key]) as server:
        yield server


@pytest.fixture
def limits_redis() -> Iterator[tuple[str, str]]:
    """A Redis URL and a key prefix of this test's own; its rate-limit keys are removed after."""
    url = redis_url_no_flush(REDIS_DBS[0])
    prefix = f"videofleet-test-{uuid.uuid4().hex}"
    yield url, prefix
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()
