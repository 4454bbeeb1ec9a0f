"""Integration tests use the session's services from ``tests/conftest.py``.

The service classes moved to ``tests/fleet.py`` so that end-to-end tests share them; these names
stay importable from here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis
import urllib3
from sqlalchemy.engine import Engine

from producer import localstack
from schema.db import make_engine
from schema.settings import Settings
from schema.storage import make_s3_client
from schema.tables import metadata_obj
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
    _free_port,
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
    "_free_port",
    "redis_url",
    "reset_database",
]


# -- transports (issue 3): an own broker that can go down, an own PostgreSQL database --


class RedisServer:
    """A private ``redis-server`` on a free port: an outage is ``stop()``, recovery ``start()``."""

    def __init__(self, logdir: Path) -> None:
        self.port = _free_port()
        self.url = f"redis://{REDIS_HOST}:{self.port}/0"
        self._logdir = logdir
        self._stack: ExitStack | None = None

    def start(self) -> None:
        if self._stack is None:
            self._stack = ExitStack()
            args = ["redis-server", "--port", str(self.port), "--bind", REDIS_HOST]
            args += ["--save", "", "--appendonly", "no"]
            localstack.spawn(self._stack, args, log=self._logdir / f"redis-{self.port}.log")
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
            return int(client.llen("video-events"))


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
    own_url = own_database(postgres_url, "transports")
    reset_database(own_url).dispose()
    return own_url


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
