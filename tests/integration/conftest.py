"""Integration tests use the session's services from ``tests/conftest.py``.

The service classes moved to ``tests/fleet.py`` so that end-to-end tests share them; these names
stay importable from here.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
import urllib3
from sqlalchemy.engine import Engine

from producer.dev import localstack
from producer.dev.localstack import free_port
from producer.events.publish import ChainPublisher
from producer.ops.metrics import queue_keys
from schema.db import make_engine
from schema.settings import Settings
from schema.storage import make_s3_client
from schema.tables import metadata_obj
from tests.cloudflare import workerd
from tests.cloudflare.workerd import D1_ACCOUNT_ID, D1_API_TOKEN, D1_DATABASE_ID, D1Api
from tests.fleet import (
    BUCKET,
    ENDED,
    POSTGRES_URL,
    REDIS_DBS,
    REDIS_HOST,
    REDIS_PORT,
    TASK_TIMEOUT_S,
    TEST_TUNING,
    Fleet,
    S3Server,
    _clean,
    _wait_worker_ready,
    own_database,
    redis_url,
    reset_database,
)
from tests.integration.media_bucket import Bucket, CountingProxy

__all__ = [
    "BUCKET",
    "ENDED",
    "POSTGRES_URL",
    "REDIS_DBS",
    "REDIS_HOST",
    "REDIS_PORT",
    "TASK_TIMEOUT_S",
    "TEST_TUNING",
    "Fleet",
    "S3Server",
    "redis_url",
    "reset_database",
]


# -- transports: an own broker that can go down, an own PostgreSQL database --


class RedisServer:
    """A private ``redis-server`` on a free port: an outage is ``stop()``, recovery ``start()``."""

    def __init__(self, logdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://{REDIS_HOST}:{self.port}/0"
        self._logdir = logdir
        self._stack: ExitStack | None = None
        self.pid = 0

    def start(self) -> None:
        if self._stack is None:
            self._stack = ExitStack()
            args = ["redis-server", "--port", str(self.port), "--bind", REDIS_HOST]
            args += ["--save", "", "--appendonly", "no"]
            proc = localstack.spawn(self._stack, args, log=self._logdir / f"redis-{self.port}.log")
            self.pid = proc.pid
            localstack.wait_listening(REDIS_HOST, self.port, what="redis-server")

    def stop(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def client(self) -> redis.Redis:
        return redis.Redis(host=REDIS_HOST, port=self.port, db=0)

    def queued(self) -> int:
        """How many chains wait on the ``video-events`` queue (nothing consumes this broker)."""
        with self.client() as client:
            return sum(int(client.llen(key)) for key in queue_keys("video-events"))


@pytest.fixture(scope="session")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("own-redis"))
    try:
        server.start()
    except localstack.StackError as exc:
        pytest.fail(str(exc))
    yield server
    server.stop()


@pytest.fixture
def broker(own_redis: RedisServer) -> Iterator[RedisServer]:
    """The private broker, running and empty, before and after the test."""
    own_redis.start()
    with own_redis.client() as client:
        client.flushdb()
    yield own_redis
    own_redis.start()


@pytest.fixture(scope="session")
def transports_db_url(postgres_url: str) -> str:
    """A PostgreSQL database of its own beside the fleet's, created when missing, migrated."""
    url = own_database(postgres_url, "transports")
    reset_database(url).dispose()
    return url


@pytest.fixture
def transports_engine(transports_db_url: str) -> Iterator[Engine]:
    """The transports database with empty tables, before and after the test."""
    engine = make_engine(transports_db_url)
    _empty(engine)
    yield engine
    _empty(engine)
    engine.dispose()


def _empty(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(metadata_obj.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty database of either dialect."""
    if request.param == "postgresql":
        yield request.getfixturevalue("transports_engine")
        return
    engine = reset_database(f"sqlite:///{tmp_path}/records.db")
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def bucket(s3_server: S3Server) -> Iterator[Bucket]:
    proxy = CountingProxy(s3_server.port)
    settings = Settings(s3_endpoint_url=f"http://127.0.0.1:{proxy.port}", s3_bucket=BUCKET)
    s3 = make_s3_client(settings)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=BUCKET)
    pool = urllib3.PoolManager()
    yield Bucket(s3, proxy, pool)
    pool.clear()
    proxy.close()


# -- Cloudflare: a local D1 in workerd, and a fleet that mirrors into it --

D1_FLEET_WEBHOOK_TOKEN = "d1-fleet-webhook-token"


@dataclass
class D1Fleet(Fleet):
    """A fleet whose broker is a private ``redis-server``: ``broker.stop()`` is an outage."""

    broker: RedisServer = field(kw_only=True)


@pytest.fixture(scope="session")
def d1_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[D1Api]:
    """workerd's local D1 behind the D1 query route, with the mirrored tables."""
    with ExitStack() as stack:
        workdir = tmp_path_factory.mktemp("d1-api")
        yield D1Api(workerd.serve(stack, "d1-api", D1_DATABASE_ID, D1_API_TOKEN, workdir=workdir))


@pytest.fixture(scope="session")
def d1_fleet_service(
    s3_server: S3Server,
    d1_api: D1Api,
    postgres_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[D1Fleet]:
    """A fleet of its own (PostgreSQL database, private broker, worker) with D1 configured.

    The D1 tables are created by ``videofleet d1 schema --apply``, the command a user runs.
    """
    tmp = tmp_path_factory.mktemp("d1-fleet")
    db_url = own_database(postgres_url, "d1")
    reset_database(db_url).dispose()
    broker = RedisServer(tmp)
    broker.start()
    env = {
        **os.environ,
        **TEST_TUNING,
        "DATABASE_URL": db_url,
        "BROKER_URL": broker.url,
        "S3_ENDPOINT_URL": s3_server.url,
        "S3_BUCKET": BUCKET,
        "D1_ACCOUNT_ID": D1_ACCOUNT_ID,
        "D1_DATABASE_ID": D1_DATABASE_ID,
        "D1_API_TOKEN": D1_API_TOKEN,
        "D1_API_BASE_URL": d1_api.base_url,
        "WEBHOOK_TOKEN": D1_FLEET_WEBHOOK_TOKEN,
    }
    settings = Settings(
        **{k.lower(): v for k, v in env.items() if k.lower() in Settings.model_fields}
    )
    videofleet("d1", "schema", "--apply", env=env)
    engine = make_engine(db_url)
    name = "test-d1"
    with ExitStack() as stack:
        stack.callback(broker.stop)
        stack.callback(engine.dispose)
        worker = localstack.start_worker(stack, logdir=tmp, name=name, env=env)
        _wait_worker_ready(settings.broker_url, f"{name}@", tmp / f"{name}.log")
        publisher = stack.enter_context(ChainPublisher(settings))
        yield D1Fleet(
            settings, engine, publisher, env, tmp / f"{name}.log", s3_server, name, broker=broker
        )
        assert worker.poll() is None, "the worker process died during the session"


@pytest.fixture
def d1_fleet(d1_fleet_service: D1Fleet, d1_api: D1Api) -> Iterator[D1Fleet]:
    """The D1 fleet with empty tables (its own and D1's) and D1 answering, before and after."""
    _reset_d1_fleet(d1_fleet_service, d1_api)
    yield d1_fleet_service
    _reset_d1_fleet(d1_fleet_service, d1_api)


def _reset_d1_fleet(fleet: D1Fleet, d1_api: D1Api) -> None:
    d1_api.outage(False)
    d1_api.query("DELETE FROM video_processing_tasks")
    d1_api.query("DELETE FROM videos")
    fleet.broker.start()
    _clean(fleet)


def videofleet(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the ``videofleet`` command as a user would; fail the test on a non-zero exit."""
    done = subprocess.run(
        [sys.executable, "-m", "producer", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"videofleet {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return done
