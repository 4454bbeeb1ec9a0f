"""The running fleet the fleet benches measure, and the producer's side of it.

Starts moto's S3 server (a child process), a fleet worker (``celery -A workers``, two
processes) and a bare no-op worker (``celery -A bench.noop``) on one broker, on a fresh
database (PostgreSQL by default, created when missing). The bench process is the producer: it
uploads, ingests and reads the task rows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
import sqlalchemy as sa
from celery import Celery, chain

from bench import media
from bench.cpumeter import process_cpu_s
from bench.ingest import prepare_database
from producer.dev import localstack
from producer.dev.localstack import free_port
from producer.events.ingest import ingest
from producer.events.publish import ChainPublisher
from producer.events.sources import r2 as sources_r2
from producer.events.sources.r2 import parse_r2
from schema.broker import BrokerKind, broker_kind, celery_broker_config
from schema.db import make_engine
from schema.settings import Settings
from schema.status import TaskStatus
from schema.storage import make_s3_client
from schema.tables import tasks

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BUCKET = "bench"
ENDED = ("completed", "failed")
# Single chains are watched closely (the next one starts when one ends); bursts of hundreds are
# watched coarsely: their times are the rows' own, and polling 1,000 rows every few
# milliseconds would take CPU from the workers it measures.
POLL_S = 0.005
BURST_POLL_S = 0.25
UPLOAD_THREADS = 8
LOGDIR = media.MEDIA_DIR / "logs"


def now_ms() -> int:
    """Wall-clock epoch milliseconds: the clock the workers stamp ``updated_at`` with."""
    return int(time.time() * 1000)


class Fleet:
    """The running stack and the producer's side of it."""

    def __init__(
        self, stack: ExitStack, *, broker_url: str, database_url: str, stamp_redis_url: str
    ) -> None:
        self.moto, endpoint = start_moto(stack, log=LOGDIR / "moto.log")
        self.env = fleet_env(
            database_url=database_url,
            broker_url=broker_url,
            endpoint=endpoint,
            BENCH_STAMP_REDIS_URL=stamp_redis_url,
        )
        self.settings = Settings(
            **{k.lower(): v for k, v in self.env.items() if k.lower() in Settings.model_fields}
        )
        self.broker_url = broker_url
        if broker_kind(broker_url) is BrokerKind.REDIS:
            redis.Redis.from_url(broker_url).flushdb()
        self.engine = fresh_database(database_url)
        stack.callback(self.engine.dispose)
        localstack.ensure_bucket(self.settings)
        self.s3 = make_s3_client(self.settings)
        self.worker = localstack.start_worker(
            stack, logdir=LOGDIR, name="bench-fleet", env=self.env
        )
        localstack.spawn(
            stack,
            [sys.executable, "-m", "celery", "-A", "bench.noop", "worker", "-Q", "bench-noop",
             "-c", "2", "-n", "bench-noop@%h", "--loglevel", "WARNING"],
            log=LOGDIR / "bench-noop.log",
            env=self.env,
        )  # fmt: skip
        self.celery = Celery(broker=broker_url, set_as_current=False)
        # The bare chain's queue must be declared as the no-op worker declares it (quorum).
        self.celery.conf.update(celery_broker_config(self.settings))
        stack.callback(self.celery.close)
        wait_ready(self.celery, "bench-fleet@", "bench-noop@")
        self.publisher = stack.enter_context(ChainPublisher(self.settings))
        self.redis = redis.Redis.from_url(stamp_redis_url)

    def upload(self, path: Path, key: str) -> dict[str, Any]:
        """Put ``path`` under ``key``; return the R2 notification R2 would send for it."""
        return self.upload_many(path, [key])[0]

    def upload_many(self, path: Path, keys: list[str]) -> list[dict[str, Any]]:
        """One file under many keys; the notifications in key order."""
        return upload_many(self.s3, path, keys)

    def worker_cpu_s(self) -> float:
        """CPU seconds used so far by the fleet worker and its pool processes."""
        return process_cpu_s(self.worker.pid)

    def deliver(self, body: dict[str, Any]) -> str:
        """Ingest one notification as its own batch; the task id."""
        (outcome,) = ingest(self.engine, self.publisher, [parse_r2(body)])
        return outcome.task_id

    def ended(self, task_ids: Iterable[str]) -> dict[str, Any]:
        """The ended rows among ``task_ids``, by id."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(tasks.c.id, tasks.c.status, tasks.c.updated_at, tasks.c.metadata).where(
                    tasks.c.id.in_(list(task_ids)), tasks.c.status.in_(ENDED)
                )
            ).all()
        return {row.id: row for row in rows}

    def statuses(self, task_ids: Iterable[str], *, prefix: str | None = None) -> dict[str, int]:
        """How many of ``task_ids`` are in each status (one query).

        ``prefix``, a key prefix holding exactly those tasks, selects them in a short
        statement instead of one with a parameter per id.
        """
        where = (
            tasks.c.video_key.startswith(prefix)
            if prefix is not None
            else tasks.c.id.in_(list(task_ids))
        )
        query = sa.select(tasks.c.status, sa.func.count()).where(where).group_by(tasks.c.status)
        with self.engine.connect() as conn:
            return {status: int(n) for status, n in conn.execute(query).tuples()}

    def count_ended(self, task_ids: Iterable[str], *, prefix: str | None = None) -> int:
        """How many of ``task_ids`` have ended."""
        counts = self.statuses(task_ids, prefix=prefix)
        return sum(counts.get(status, 0) for status in ENDED)

    def wait(self, task_ids: list[str], *, timeout_s: float = 300) -> dict[str, Any]:
        """The rows of ``task_ids`` once all have ended, watched closely (a chain at a time)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            done = self.ended(task_ids)
            if len(done) == len(task_ids):
                return done
            time.sleep(POLL_S)
        raise SystemExit(f"tasks did not end in {timeout_s} s; see {LOGDIR}")

    def wait_many(
        self, task_ids: list[str], *, timeout_s: float, prefix: str | None = None
    ) -> tuple[dict[str, Any], list[int]]:
        """The rows of ``task_ids`` once all have ended, watched coarsely (a burst).

        Also returns how many of them were under way (``processing``: a step has run, the
        chain has not ended) at each look: depth-first keeps that near the worker processes,
        FIFO starts every video before it finishes any. ``prefix`` as for ``statuses``.
        """
        deadline = time.monotonic() + timeout_s
        under_way: list[int] = []
        while True:
            counts = self.statuses(task_ids, prefix=prefix)
            if sum(counts.get(status, 0) for status in ENDED) == len(task_ids):
                return self.ended(task_ids), under_way
            under_way.append(counts.get(TaskStatus.PROCESSING.value, 0))
            if time.monotonic() > deadline:
                raise SystemExit(f"tasks did not end in {timeout_s:.0f} s; see {LOGDIR}")
            time.sleep(BURST_POLL_S)

    def noop_chain(self, chain_id: str) -> int:
        """Run the bare chain; return its latency in ms."""
        steps = [
            self.celery.signature(name, args=(chain_id,), immutable=True, queue="bench-noop")
            for name in ("bench.noop.step", "bench.noop.step", "bench.noop.last")
        ]
        self.redis.delete(f"bench:noop:{chain_id}")  # a stamp left by a run on the other broker
        started = now_ms()
        chain(*steps).apply_async()
        while (stamp := self.redis.get(f"bench:noop:{chain_id}")) is None:
            time.sleep(POLL_S)
        return int(stamp) - started


def fleet_env(*, database_url: str, broker_url: str, endpoint: str, **extra: str) -> dict[str, str]:
    """The environment every fleet process of a bench gets: its database, broker and S3."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "BROKER_URL": broker_url,
        "S3_ENDPOINT_URL": endpoint,
        "S3_BUCKET": BUCKET,
        "LOG_LEVEL": "WARNING",
        **extra,
    }


def start_moto(stack: ExitStack, *, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """moto's S3 server as a child process (the stack stops it), and its endpoint URL."""
    port = free_port()
    args = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    proc = localstack.spawn(stack, args, log=log)
    localstack.wait_listening("127.0.0.1", port, what="moto")
    return proc, f"http://127.0.0.1:{port}"


def wait_ready(celery: Celery, *names: str) -> None:
    """Wait until a worker whose name starts with each of ``names`` answers a ping."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        replies = [k for reply in celery.control.ping(timeout=0.5) for k in reply]
        if all(any(r.startswith(n) for r in replies) for n in names):
            return
    raise SystemExit(f"workers {names} did not start; see {LOGDIR}")


def upload_many(s3: S3Client, path: Path, keys: list[str]) -> list[dict[str, Any]]:
    """One file under many keys, a few PUTs at a time; the notifications in key order."""
    data = path.read_bytes()

    def put(key: str) -> dict[str, Any]:
        etag = s3.put_object(Bucket=BUCKET, Key=key, Body=data)["ETag"].strip('"')
        return r2_notification(key, size=len(data), etag=etag)

    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        return list(pool.map(put, keys))


def r2_notification(key: str, *, size: int, etag: str) -> dict[str, Any]:
    """The R2 event notification body for a PutObject of ``key`` to the bench bucket."""
    return sources_r2.r2_notification(bucket=BUCKET, key=key, size=size, etag=etag)


def fresh_database(url: str) -> sa.engine.Engine:
    """Empty tables at the current revision; a missing PostgreSQL database is created."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    prepare_database(url)
    return make_engine(url)
