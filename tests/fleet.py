"""The real services the integration and end-to-end tests run against, as plain classes.

PostgreSQL or SQLite, Redis, moto's S3 server over HTTP, a Celery worker process: every service
must be there; a missing one fails the run, it never skips. The fixtures that start them live in
``tests/conftest.py`` so that both test layers share one fleet per session.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
import sqlalchemy as sa
from celery import Celery
from moto.server import ThreadedMotoServer
from sqlalchemy.engine import Engine

from producer.dev import localstack
from producer.events.ingest import Outcome, ingest
from producer.events.publish import ChainPublisher
from producer.events.sources.r2 import parse_r2
from schema.db import make_engine
from schema.migrate import upgrade
from schema.settings import Settings
from schema.status import TaskStatus
from schema.storage import make_s3_client
from schema.tables import tasks, videos
from tests.factories import r2_body

# Two Redis database numbers: one broker per fleet, so that test runs can share a Redis.
REDIS_DBS = tuple(int(n) for n in os.environ.get("TEST_REDIS_DBS", "14,15").split(","))
POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
RABBITMQ_HOST, RABBITMQ_PORT = "127.0.0.1", 5672
# A RabbitMQ virtual host per test run (derived from the Redis databases, which are per run).
RABBITMQ_VHOST = os.environ.get(
    "TEST_RABBITMQ_VHOST", "videofleet-test-" + "-".join(map(str, REDIS_DBS))
)
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


def reset_database(url: str) -> Engine:
    """Drop every table in the database (also those of other revisions) and migrate from scratch."""
    engine = make_engine(url)
    with engine.begin() as conn:
        existing = sa.MetaData()
        existing.reflect(conn)
        existing.drop_all(conn)
    upgrade(engine)
    return engine


def redis_url_no_flush(db: int) -> str:
    """The URL of Redis database ``db``, failing the test if Redis does not answer."""
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT}: {exc}")
    finally:
        client.close()
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"


def redis_url(db: int) -> str:
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT}: {exc}")
    client.flushdb()
    client.close()
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"


def rabbitmq_url(vhost: str = RABBITMQ_VHOST) -> str:
    """The URL of an empty RabbitMQ virtual host ``vhost``, (re)created through ``rabbitmqctl``.

    Deleting the vhost drops every queue and exchange a previous run left, like ``flushdb``.
    """
    ctl = ["rabbitmqctl", "--quiet"]
    try:
        subprocess.run([*ctl, "delete_vhost", vhost], capture_output=True, check=False)
        for args in (
            ["add_vhost", vhost],
            ["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        ):
            subprocess.run([*ctl, *args], capture_output=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.fail(
            f"RabbitMQ vhost {vhost} could not be created (is rabbitmq-server running?): {exc}"
        )
    return f"amqp://guest:guest@{RABBITMQ_HOST}:{RABBITMQ_PORT}/{quote(vhost, safe='')}"


def own_database(postgres_url: str, suffix: str) -> str:
    """The URL of database ``<name>_<suffix>`` beside ``postgres_url``'s, created if missing."""
    url = sa.engine.make_url(postgres_url)
    name = f"{url.database}_{suffix}"
    admin = make_engine(url.set(database="postgres").render_as_string(hide_password=False))
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            )
            if exists.first() is None:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


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

    def _row_or_none(self, task_id: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(tasks).where(tasks.c.id == task_id)).one_or_none()

    def rows(self) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(tasks)).all())

    def wait(
        self, task_id: str, *, until: frozenset[str] = ENDED, timeout_s: float = TASK_TIMEOUT_S
    ) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            # A row a transport has yet to write (a retried webhook batch) is waited for too.
            row = self._row_or_none(task_id)
            if row is not None and row.status in until:
                return row
            if time.monotonic() > deadline:
                log_tail = self.worker_log.read_text()[-3000:]
                pytest.fail(
                    f"task {task_id} still {row.status if row else 'not written'} after"
                    f" {timeout_s} s; log:\n{log_tail}"
                )
            time.sleep(0.1)

    def keys(self, prefix: str) -> list[str]:
        listing = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return sorted(o["Key"] for o in listing.get("Contents", []))

    def thumbnail_keys(self, prefix: str) -> list[str]:
        """The numbered thumbnails under ``prefix`` (the storyboard's sprite and VTT sit beside)."""
        return [k for k in self.keys(prefix) if k.rsplit("/", 1)[-1][:3].isdigit()]


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
    for upload in s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"])
