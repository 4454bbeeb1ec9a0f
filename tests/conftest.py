"""Fixtures every test layer shares: generated media, and the real services of a running fleet.

Every service must be there: a missing one fails the run, it never skips. Each test starts from
empty tables and an empty bucket; the worker processes (one per database) live for the session.
The fleet fixtures live here, not under ``tests/integration``, because ``tests/e2e`` runs on the
same fleet: one definition means one worker per database in a whole run.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from celery import Celery
from moto.server import ThreadedMotoServer
from sqlalchemy.engine import Engine

from producer import localstack, samples
from producer.ingest import Outcome, ingest
from producer.publish import ChainPublisher
from producer.sources.r2 import parse_r2
from schema.db import make_engine
from schema.migrate import upgrade
from schema.settings import Settings
from schema.status import TaskStatus
from schema.storage import make_s3_client
from schema.tables import metadata_obj, tasks, videos
from tests.factories import r2_body

# Two Redis database numbers: one broker per fleet, so that test runs can share a Redis.
REDIS_DBS = tuple(int(n) for n in os.environ.get("TEST_REDIS_DBS", "14,15").split(","))
POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
BUCKET = "videofleet-test"
WORKER_READY_TIMEOUT_S = 60.0
TASK_TIMEOUT_S = 90.0
ENDED = frozenset({TaskStatus.COMPLETED.value, TaskStatus.FAILED.value})
# Short delays through configuration; the policy code is the production code.
TEST_TUNING = {
    "RETRY_DELAY_S": "1",
    "RETRY_BACKOFF_MAX_S": "4",
    "RETRY_JITTER": "false",
    "STEP_SOFT_TIME_LIMIT_S": "60",
    "STEP_TIME_LIMIT_S": "90",
    "VISIBILITY_TIMEOUT_S": "120",
    "THUMBNAIL_COUNT": "5",
    "THUMBNAIL_WIDTH_PX": "160",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class S3Server:
    """moto's S3 server on a fixed port; stopping and starting keeps its objects (same process)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: ThreadedMotoServer | None = None

    def start(self) -> None:
        if self._server is None:
            self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
            self._server.start()
            localstack.wait_listening("127.0.0.1", self.port, what="moto")

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


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


def reset_database(url: str) -> Engine:
    """Drop everything videofleet owns and migrate from scratch."""
    engine = make_engine(url)
    with engine.begin() as conn:
        metadata_obj.drop_all(conn)
        conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
    upgrade(engine)
    return engine


def redis_url(db: int) -> str:
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT}: {exc}")
    client.flushdb()
    client.close()
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"


@dataclass
class Fleet:
    """A running fleet: the test process is the producer, a child process is the worker."""

    settings: Settings
    engine: Engine
    publisher: ChainPublisher
    env: dict[str, str]
    worker_log: Path
    s3_server: S3Server
    worker_name: str
    s3: Any = field(init=False)

    def __post_init__(self) -> None:
        self.s3 = make_s3_client(self.settings)

    def upload(self, path: Path, key: str) -> dict[str, Any]:
        """PUT a file and return the R2 notification for it."""
        data = path.read_bytes()
        etag = self.s3.put_object(Bucket=BUCKET, Key=key, Body=data)["ETag"].strip('"')
        return r2_body(bucket=BUCKET, key=key, size=len(data), etag=etag)

    def deliver(self, *bodies: dict[str, Any]) -> list[Outcome]:
        return ingest(self.engine, self.publisher, [parse_r2(b) for b in bodies])

    def row(self, task_id: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(tasks).where(tasks.c.id == task_id)).one()

    def rows(self) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(tasks)).all())

    def wait(
        self, task_id: str, *, until: frozenset[str] = ENDED, timeout_s: float = TASK_TIMEOUT_S
    ) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            row = self.row(task_id)
            if row.status in until:
                return row
            if time.monotonic() > deadline:
                log_tail = self.worker_log.read_text()[-3000:]
                pytest.fail(
                    f"task {task_id} still {row.status} after {timeout_s} s; log:\n{log_tail}"
                )
            time.sleep(0.1)

    def keys(self, prefix: str) -> list[str]:
        listing = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return sorted(o["Key"] for o in listing.get("Contents", []))


def _wait_worker_ready(broker_url: str, name: str, log: Path) -> None:
    app = Celery(broker=broker_url, set_as_current=False)
    deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if any(k.startswith(name) for reply in app.control.ping(timeout=0.5) for k in reply):
                return
        pytest.fail(f"worker {name} did not answer a ping; log:\n{log.read_text()[-3000:]}")
    finally:
        app.close()


@pytest.fixture(scope="session", params=["postgresql", "sqlite"])
def fleet_service(
    request: pytest.FixtureRequest, s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    backend = request.param
    tmp = tmp_path_factory.mktemp(f"fleet-{backend}")
    db_url = (
        request.getfixturevalue("postgres_url")
        if backend == "postgresql"
        else f"sqlite:///{tmp}/fleet.db"
    )
    env = {
        **os.environ,
        **TEST_TUNING,
        "DATABASE_URL": db_url,
        "BROKER_URL": redis_url(REDIS_DBS[0] if backend == "postgresql" else REDIS_DBS[1]),
        "S3_ENDPOINT_URL": s3_server.url,
        "S3_BUCKET": BUCKET,
    }
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


def _clean(fleet: Fleet) -> None:
    with fleet.engine.begin() as conn:
        conn.execute(tasks.delete())
        conn.execute(videos.delete())
    s3 = fleet.s3
    try:
        s3.head_bucket(Bucket=BUCKET)
    except s3.exceptions.ClientError:
        s3.create_bucket(Bucket=BUCKET)
    for key in fleet.keys(""):
        s3.delete_object(Bucket=BUCKET, Key=key)


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
