"""A private fleet for the fault suite: its own Redis, PostgreSQL, S3 behind a fault proxy,
two worker processes and the recovery loop, all on free loopback ports, none of them shared.

The services come from ``tests.integration.outages`` (Redis with AOF, a PostgreSQL cluster, the
503 proxy) and ``tests.integration.conftest.RedisServer`` (Redis without persistence). Workers
and the recoverer run with the production defaults, except shorter retry delays (the policy is
the same, the waits shorter) and the step time limits; the visibility timeout stays at its
default hour, so nothing here is rescued by it.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import redis
import sqlalchemy as sa
from celery import Celery
from sqlalchemy.engine import Engine

from producer.dev import localstack
from producer.events.ingest import ingest
from producer.events.publish import ChainPublisher
from producer.events.sources.r2 import parse_r2
from producer.ops.metrics import queue_keys
from schema.errors import TransientError
from schema.message import QUEUE
from schema.settings import Settings
from schema.storage import make_s3_client
from schema.tables import tasks
from tests.factories import r2_body
from tests.fleet import _free_port, _wait_worker_ready, reset_database
from tests.integration.conftest import RedisServer
from tests.integration.outages import FaultProxy, PostgresCluster, PrivateRedis

BUCKET = "fault-suite"
THUMBNAIL_COUNT = 5
WORKERS = 2
# The retry policy of production, with waits short enough for a suite: 2, 4, 8 s (+ jitter).
SUITE_TUNING = {
    "RETRY_DELAY_S": "2",
    "RETRY_BACKOFF_MAX_S": "16",
    "STEP_SOFT_TIME_LIMIT_S": "60",
    "STEP_TIME_LIMIT_S": "90",
    "THUMBNAIL_COUNT": str(THUMBNAIL_COUNT),
    "THUMBNAIL_WIDTH_PX": "160",
    "LOG_LEVEL": "INFO",
}
ENDED = ("completed", "failed")
RETRY_LINE = re.compile(r"Task \S+: \S+ will retry \(")


class Broker(Protocol):
    """A private ``redis-server`` the suite can stop and start."""

    url: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class Services:
    """The services of one suite run; the broker is replaced per fault (with or without AOF)."""

    workdir: Path
    postgres: PostgresCluster
    s3_url: str
    proxy: FaultProxy
    broker: Broker | None = None

    def new_broker(self, *, persistent: bool) -> Broker:
        """A fresh empty broker: AOF on (a restart keeps the queue) or off (restart empties it)."""
        if self.broker is not None:
            self.broker.stop()
        directory = self.workdir / f"redis-{_free_port()}"
        directory.mkdir()
        self.broker = PrivateRedis(directory) if persistent else RedisServer(directory)
        self.broker.start()
        return self.broker


@contextmanager
def services(workdir: Path) -> Iterator[Services]:
    """Start PostgreSQL, moto and the fault proxy; stop each by its own process at the end."""
    with ExitStack() as stack:
        postgres = PostgresCluster()
        stack.callback(postgres.remove)
        postgres.start()
        port = _free_port()
        localstack.spawn(
            stack,
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            log=workdir / "moto.log",
        )
        localstack.wait_listening("127.0.0.1", port, what="moto")
        s3_url = f"http://127.0.0.1:{port}"
        make_s3_client(Settings(s3_endpoint_url=s3_url)).create_bucket(Bucket=BUCKET)
        proxy = stack.enter_context(FaultProxy(port, fraction=0.0, seed=10))
        found = Services(workdir, postgres, s3_url, proxy)
        try:
            yield found
        finally:
            if found.broker is not None:
                found.broker.stop()


@dataclass
class Fleet:
    """Two workers and the recoverer on the services; the test process is the producer."""

    settings: Settings
    env: dict[str, str]
    engine: Engine
    workdir: Path
    workers: list[subprocess.Popen[bytes]]
    stack: ExitStack
    killed: list[int] = field(default_factory=list)

    def deliver(self, bodies: list[dict[str, Any]], *, attempts: int = 60) -> None:
        """Ingest notifications as a queue would deliver them: again after a transient error."""
        with ChainPublisher(self.settings) as publisher:
            for _ in range(attempts):
                try:
                    ingest(self.engine, publisher, [parse_r2(b) for b in bodies])
                    return
                except TransientError:
                    time.sleep(1.0)
        raise RuntimeError("the producer could not deliver a batch for a minute")

    def counts(self) -> dict[str, int]:
        """Rows per status; an empty answer while the database is down."""
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    sa.select(tasks.c.status, sa.func.count()).group_by(tasks.c.status)
                ).all()
        except sa.exc.OperationalError:
            return {}
        return {str(status): int(count) for status, count in rows}

    def ended(self) -> int:
        counts = self.counts()
        return sum(counts.get(s, 0) for s in ENDED)

    def broker_idle(self) -> bool:
        """Whether the broker holds no message of the queue, waiting or unacknowledged."""
        try:
            with redis.Redis.from_url(self.settings.broker_url) as client:
                waiting = sum(client.llen(key) for key in queue_keys(QUEUE))
                return not (waiting or client.hlen("unacked"))
        except redis.RedisError:
            return False

    def rows(self) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(tasks)).all())

    def recovered(self) -> int:
        """Messages given back and chains republished by the recovery loop."""
        text = (self.workdir / "recover.log").read_text(errors="replace")
        return text.count("given back to its queue") + text.count("; republished as")

    def retries_logged(self) -> int:
        """``will retry`` lines in every worker log: the retries that really ran."""
        return sum(
            len(RETRY_LINE.findall(log.read_text(errors="replace")))
            for log in self.workdir.glob("worker-*.log")
        )

    def kill_main(self, index: int) -> None:
        """SIGKILL one worker's main process while it runs a step (its pool children die too)."""
        worker = self.workers[index]
        app = Celery(broker=self.settings.broker_url, set_as_current=False)
        name = f"worker-{index}@{socket.gethostname()}"
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                # limit=1: the answer comes back at once, while its steps (~0.3 s) still run.
                ask = app.control.inspect(destination=[name], timeout=1.0, limit=1)
                active = ask.active() or {}
                if active.get(name):
                    break
        finally:
            app.close()
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        self.killed.append(worker.pid)

    def pool_children(self) -> list[int]:
        """PIDs of the live workers' pool processes."""
        children: list[int] = []
        for worker in self.workers:
            if worker.poll() is None:
                path = Path(f"/proc/{worker.pid}/task/{worker.pid}/children")
                try:
                    children += [int(pid) for pid in path.read_text().split()]
                except OSError:
                    continue
        return children


@contextmanager
def fleet(found: Services, name: str, *, persistent_broker: bool = True) -> Iterator[Fleet]:
    """A fresh broker, database and key space, 2 workers and ``videofleet recover`` running."""
    broker = found.new_broker(persistent=persistent_broker)
    workdir = found.workdir / name
    workdir.mkdir()
    env = {
        **os.environ,
        **SUITE_TUNING,
        "DATABASE_URL": found.postgres.url,
        "BROKER_URL": broker.url,
        "S3_ENDPOINT_URL": found.proxy.url,
        "S3_BUCKET": BUCKET,
    }
    settings = Settings(
        **{k.lower(): v for k, v in env.items() if k.lower() in Settings.model_fields}
    )
    engine = reset_database(found.postgres.url)
    with ExitStack() as stack:
        stack.callback(engine.dispose)
        workers = []
        for index in range(WORKERS):
            worker_name = f"worker-{index}"
            workers.append(
                localstack.start_worker(
                    stack, logdir=workdir, name=worker_name, concurrency=1, env=env
                )
            )
            _wait_worker_ready(broker.url, f"{worker_name}@", workdir / f"{worker_name}.log")
        localstack.spawn(
            stack,
            [sys.executable, "-m", "producer", "recover"],
            log=workdir / "recover.log",
            env=env,
        )
        yield Fleet(settings, env, engine, workdir, workers, stack)


def upload(found: Services, clips: list[Path], prefix: str, count: int) -> list[dict[str, Any]]:
    """PUT ``count`` objects (the clips in turn) straight to moto; return their notifications."""
    settings = Settings(s3_endpoint_url=found.s3_url, s3_bucket=BUCKET)
    s3 = make_s3_client(settings)
    data = [clip.read_bytes() for clip in clips]
    bodies = []
    for n in range(count):
        body = data[n % len(data)]
        key = f"{prefix}/clip-{n:04d}.mp4"
        etag = s3.put_object(Bucket=BUCKET, Key=key, Body=body)["ETag"].strip('"')
        bodies.append(r2_body(bucket=BUCKET, key=key, size=len(body), etag=etag))
    return bodies


def thumbnail_sets(found: Services, prefix: str) -> dict[str, int]:
    """Numbered thumbnails per video under ``thumbnails/<prefix>/``."""
    s3 = make_s3_client(Settings(s3_endpoint_url=found.s3_url, s3_bucket=BUCKET))
    per_video: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix=f"thumbnails/{prefix}/"
    ):
        for item in page.get("Contents", []):
            video, _, name = item["Key"].rpartition("/")
            if name[:3].isdigit():
                per_video[video] = per_video.get(video, 0) + 1
    return per_video
