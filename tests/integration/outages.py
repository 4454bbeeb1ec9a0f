"""Private services that a test may break: a Redis with AOF, a PostgreSQL cluster, a 503 proxy.

The shared Redis and PostgreSQL on 6379/5432 are never stopped; these run on free loopback ports
under the test's own directory, and each is stopped by its own process at the end.
"""

from __future__ import annotations

import http.client
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from producer.dev import localstack
from producer.events.ingest import ingest
from producer.events.publish import ChainPublisher
from producer.events.sources.r2 import parse_r2
from schema.settings import Settings
from schema.storage import make_s3_client
from schema.tables import tasks
from tests.factories import r2_body
from tests.fleet import TEST_TUNING, _free_port, _wait_worker_ready, reset_database

HOST = "127.0.0.1"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
SLOWDOWN_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


class PrivateRedis:
    """A private ``redis-server`` with AOF (fsync on every write): a restart keeps its data."""

    def __init__(self, directory: Path) -> None:
        self.port = _free_port()
        self.url = f"redis://{HOST}:{self.port}/0"
        self._dir = directory
        self._stack: ExitStack | None = None

    def start(self) -> None:
        if self._stack is None:
            self._stack = ExitStack()
            args = ["redis-server", "--port", str(self.port), "--bind", HOST, "--dir"]
            args += [str(self._dir), "--save", "", "--appendonly", "yes"]
            args += ["--appendfsync", "always"]
            localstack.spawn(self._stack, args, log=self._dir / "redis.log")
            localstack.wait_listening(HOST, self.port, what="redis-server")

    def stop(self) -> None:
        """SIGTERM: Redis writes its AOF and exits."""
        if self._stack is not None:
            self._stack.close()
            self._stack = None


class PostgresCluster:
    """A private PostgreSQL 15 cluster; ``stop()`` and ``start()`` make a database outage.

    Its directory is made under the system temp directory, not pytest's (which only root may
    enter), and removed by ``remove()``.
    """

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"postgresql+psycopg://postgres@{HOST}:{self.port}/postgres"
        self._dir = Path(tempfile.mkdtemp(prefix="videofleet-pg-"))
        self._data = self._dir / "data"
        if os.geteuid() == 0:
            shutil.chown(self._dir, user="postgres")
        self._as_postgres([str(PG_BIN / "initdb"), "-D", str(self._data), "-A", "trust"])
        self.running = False

    def start(self) -> None:
        options = f"-p {self.port} -k {self._dir} -c listen_addresses={HOST}"
        self._pg_ctl("-l", str(self._dir / "postgres.log"), "-o", options, "-w", "start")
        self.running = True

    def stop(self) -> None:
        if self.running:
            self._pg_ctl("-m", "fast", "-w", "stop")
            self.running = False

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _pg_ctl(self, *args: str) -> None:
        self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self._data), *args])

    def _as_postgres(self, args: list[str]) -> None:
        if os.geteuid() == 0:
            args = ["runuser", "-u", "postgres", "--", *args]
        subprocess.run(args, check=True, capture_output=True, timeout=60)


class FaultProxy:
    """An HTTP proxy before an S3 endpoint that answers ``503 SlowDown`` to a share of requests.

    Which requests fail is decided by ``random.Random(seed)`` drawn once per request in arrival
    order.
    """

    def __init__(self, upstream_port: int, *, fraction: float, seed: int) -> None:
        self.fraction = fraction
        self.forwarded = 0
        self.refused = 0
        self._upstream_port = upstream_port
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((HOST, 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://{HOST}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _refuse(self) -> bool:
        with self._lock:
            refuse = self._random.random() < self.fraction
            if refuse:
                self.refused += 1
            else:
                self.forwarded += 1
            return refuse

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy._refuse():
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(SLOWDOWN_BODY)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(SLOWDOWN_BODY)
                    return
                upstream = http.client.HTTPConnection(HOST, proxy._upstream_port, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                    self.send_response(response.status)
                    for name, value in response.getheaders():
                        if name.lower() not in _HOP_BY_HOP:
                            self.send_header(name, value)
                    # A HEAD answer's Content-Length is the object's size; keep it.
                    size = response.getheader("Content-Length") if self.command == "HEAD" else None
                    self.send_header("Content-Length", size or str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    upstream.close()

            # http.server dispatches on these names.
            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay  # noqa: N815

        return Handler


@dataclass
class OwnFleet:
    """A worker process of the test's own, on the broker, database and S3 endpoint it was given."""

    settings: Settings
    engine: Engine
    publisher: ChainPublisher
    log: Path
    bucket: str
    worker: subprocess.Popen[bytes]

    def upload_and_deliver(self, media: Path, keys: list[str], *, s3_url: str) -> list[str]:
        """PUT ``media`` under each key straight to the store, deliver the notifications."""
        direct = make_s3_client(self.settings.model_copy(update={"s3_endpoint_url": s3_url}))
        data = media.read_bytes()
        bodies = []
        for key in keys:
            etag = direct.put_object(Bucket=self.bucket, Key=key, Body=data)["ETag"].strip('"')
            bodies.append(r2_body(bucket=self.bucket, key=key, size=len(data), etag=etag))
        outcomes = ingest(self.engine, self.publisher, [parse_r2(b) for b in bodies])
        return [o.task_id for o in outcomes]

    def statuses(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(tasks.c.status, sa.func.count()).group_by(tasks.c.status)
            ).all()
        return {str(status): int(count) for status, count in rows}

    def rows(self) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(tasks)).all())

    def wait_ended(self, count: int, *, timeout_s: float) -> dict[str, int]:
        """Wait until ``count`` rows are completed or failed; return the status counts."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                counts = self.statuses()
            except sa.exc.OperationalError:
                counts = {}
            if counts.get("completed", 0) + counts.get("failed", 0) >= count:
                return counts
            if time.monotonic() > deadline:
                raise AssertionError(f"not all ended: {counts}\n{self.log.read_text()[-4000:]}")
            time.sleep(0.2)


@contextmanager
def own_fleet(
    tmp: Path,
    *,
    database_url: str,
    s3_url: str,
    bucket: str,
    broker_url: str | None = None,
    env: dict[str, str] | None = None,
    concurrency: int = 2,
) -> Iterator[OwnFleet]:
    """A migrated database, the bucket, and a 2-process worker on the given services.

    Without ``broker_url`` the worker gets a Redis of its own for the test.
    """
    stack = ExitStack()
    if broker_url is None:
        redis_dir = tmp / "redis"
        redis_dir.mkdir()
        broker = PrivateRedis(redis_dir)
        broker.start()
        stack.callback(broker.stop)
        broker_url = broker.url
    full_env = {
        **os.environ,
        **TEST_TUNING,
        "DATABASE_URL": database_url,
        "BROKER_URL": broker_url,
        "S3_ENDPOINT_URL": s3_url,
        "S3_BUCKET": bucket,
        **(env or {}),
    }
    settings = Settings(
        **{k.lower(): v for k, v in full_env.items() if k.lower() in Settings.model_fields}
    )
    engine = reset_database(database_url)
    s3 = make_s3_client(settings)
    if bucket not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
        s3.create_bucket(Bucket=bucket)
    name = f"own-{_free_port()}"
    with stack:
        stack.callback(engine.dispose)
        worker = localstack.start_worker(
            stack, logdir=tmp, name=name, concurrency=concurrency, env=full_env
        )
        _wait_worker_ready(broker_url, f"{name}@", tmp / f"{name}.log")
        publisher = stack.enter_context(ChainPublisher(settings))
        yield OwnFleet(settings, engine, publisher, tmp / f"{name}.log", bucket, worker)
