"""Ingest throughput and CPU cost per event: webhook and pull consumer, batched vs one by one.

    .venv/bin/python bench/ingest.py --events 2000

Six modes, measured side by side in one run on PostgreSQL and a real Redis broker, after a
baseline (``ingest()`` called in-process with batches of 100: the floor under every transport):

- webhook, batches of 100: ``videofleet serve`` (uvicorn) in a child process, an HTTP client
  posting Worker-forwarded batches of 100 R2 notifications;
- webhook, one per request: the same server, one notification per POST;
- pull, batch 100: ``videofleet pull`` in a child process against the test suite's local Queues
  API server (``tests/integration/queues_server.py``), ``PULL_BATCH_SIZE=100``;
- pull, batch 1: the same with ``PULL_BATCH_SIZE=1``;
- pull, 50 ms API, 1 loop / 4 loops: batch 100 against a server that holds every pull and ack
  50 ms, as a distant API does, with ``PULL_CONCURRENCY`` 1 and 4.

Events/s is wall-clock throughput from the first request to the last event ingested; CPU ms per
event is the producer process's CPU (user + system, from psutil) over the same interval. Each
event is a distinct upload, so every one is inserted and published. The database's tables are
dropped and the Redis database flushed at the end.

With ``--broker both`` (the default) every mode runs on Redis, then on RabbitMQ (a quorum
queue with publisher confirms), and a last table puts the two side by side.

Settings: ``--database-url`` (env ``BENCH_DATABASE_URL``, default a ``videofleet_bench``
database on the local PostgreSQL, created when missing), ``--redis-db`` (env
``BENCH_REDIS_DB``, default 13) on ``--redis-host``/``--redis-port``, and ``--rabbitmq-vhost``
(env ``BENCH_RABBITMQ_VHOST``, default ``videofleet-bench``) on the local RabbitMQ.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import psutil
import redis
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from producer.dev.localstack import is_listening  # noqa: E402
from schema.db import make_engine  # noqa: E402
from schema.migrate import upgrade  # noqa: E402
from schema.tables import metadata_obj, tasks  # noqa: E402
from tests.fleet import rabbitmq_url  # noqa: E402
from tests.integration.queues_server import QueuesServer  # noqa: E402

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/videofleet_bench"
TOKEN = "bench-webhook-token"  # noqa: S105  (a local throwaway server)
CLI = [sys.executable, "-c", "from producer.cli import main; main()"]
WARMUP_EVENTS = 100
PULL_WARMUP_EVENTS = 10
TIMEOUT_S = 600.0
# A round trip to Cloudflare's API from a server elsewhere: the latency modes hold every pull and
# ack this long, to show what PULL_CONCURRENCY buys.
API_LATENCY_MS = 50


@dataclass(frozen=True)
class Result:
    mode: str
    events: int
    wall_s: float
    cpu_s: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s

    @property
    def cpu_ms_per_event(self) -> float:
        return self.cpu_s * 1000 / self.events


BUCKET = "bench"


def r2_body(key: str) -> dict[str, object]:
    return {
        "account": "3f4b7e3dcab231cbfdaa90a6a28bd548",
        "action": "PutObject",
        "bucket": BUCKET,
        "object": {"key": key, "size": 1024, "eTag": f"{abs(hash(key)):032x}"[:32]},
        "eventTime": "2026-11-28T10:00:00.000Z",
    }


def cpu_s(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def prepare_database(url: str) -> None:
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "postgresql":
        admin = make_engine(parsed.set(database="postgres").render_as_string(hide_password=False))
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            found = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database}
            ).first()
            if found is None:
                conn.execute(sa.text(f'CREATE DATABASE "{parsed.database}"'))
        admin.dispose()
    engine = make_engine(url)
    drop_tables(engine)
    upgrade(engine)
    engine.dispose()


def drop_tables(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        metadata_obj.drop_all(conn)
        conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))


def count_tasks(engine: sa.Engine, prefix: str) -> int:
    query = sa.select(sa.func.count()).where(tasks.c.video_key.startswith(prefix))
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


@contextmanager
def child(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def bench_webhook(env: dict[str, str], engine: sa.Engine, events: int, log: Path) -> list[Result]:
    port = free_port()
    server_env = {**env, "WEBHOOK_TOKEN": TOKEN, "WEBHOOK_MAX_BODY_BYTES": str(16 * 1024 * 1024)}
    args = [*CLI, "serve", "--host", "127.0.0.1", "--port", str(port)]
    results = []
    with child(args, server_env, log) as proc:
        deadline = time.monotonic() + 60
        while not is_listening("127.0.0.1", port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"videofleet serve did not start; see {log}")
            time.sleep(0.05)
        server = psutil.Process(proc.pid)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
            for batch, mode in ((100, "webhook, batches of 100"), (1, "webhook, 1 per request")):
                prefix = f"webhook-{batch}/"
                post_all(client, [f"warmup-{prefix}{n}" for n in range(WARMUP_EVENTS)], batch)
                keys = [f"{prefix}{n:06}.mp4" for n in range(events)]
                cpu_before, started = cpu_s(server), time.perf_counter()
                post_all(client, keys, batch)
                wall, cpu = time.perf_counter() - started, cpu_s(server) - cpu_before
                check(count_tasks(engine, prefix), events, mode)
                results.append(Result(mode, events, wall, cpu))
    return results


def post_all(client: httpx2.Client, keys: list[str], batch: int) -> None:
    for start in range(0, len(keys), batch):
        chunk = keys[start : start + batch]
        if batch == 1:
            document: object = r2_body(chunk[0])
        else:
            document = [
                {
                    "id": key,
                    "attempts": 1,
                    "timestamp": "2026-11-28T10:00:00Z",
                    "body": r2_body(key),
                }
                for key in chunk
            ]
        response = client.post("/webhook/events", json=document)
        if response.status_code != 202:
            raise SystemExit(f"webhook answered {response.status_code}: {response.text[:500]}")


# (mode, PULL_BATCH_SIZE, PULL_CONCURRENCY, seconds each pull and ack is held by the server)
PULL_MODES = (
    ("pull, batch 100", 100, 1, 0.0),
    ("pull, batch 1", 1, 1, 0.0),
    (f"pull, {API_LATENCY_MS} ms API, 1 loop", 100, 1, API_LATENCY_MS / 1000),
    (f"pull, {API_LATENCY_MS} ms API, 4 loops", 100, 4, API_LATENCY_MS / 1000),
)


def bench_pull(env: dict[str, str], engine: sa.Engine, events: int, log: Path) -> list[Result]:
    results = []
    for mode, batch, concurrency, latency_s in PULL_MODES:
        prefix = f"pull-{batch}-{concurrency}-{latency_s}/"
        queues = QueuesServer(max_retries=3).start()
        queues.state.pull_delay_s = queues.state.ack_delay_s = latency_s
        try:
            for n in range(PULL_WARMUP_EVENTS):
                queues.state.send(r2_body(f"warmup-{prefix}{n}"))
            consumer_env = {
                **env,
                **queues.env(),
                "PULL_BATCH_SIZE": str(batch),
                "PULL_CONCURRENCY": str(concurrency),
                "PULL_VISIBILITY_TIMEOUT_MS": "120000",
                "PULL_IDLE_INITIAL_S": "0.01",
                "PULL_IDLE_MAX_S": "0.02",
            }
            with child([*CLI, "pull"], consumer_env, log) as proc:
                consumer = psutil.Process(proc.pid)
                wait_drained(queues, f"the warm-up; see {log}")
                # Measured from a warm consumer: connections open, Celery app finalised.
                cpu_before, started = cpu_s(consumer), time.perf_counter()
                for n in range(events):
                    queues.state.send(r2_body(f"{prefix}{n:06}.mp4"))
                wait_drained(queues, f"{mode}; see {log}")
                wall, cpu = time.perf_counter() - started, cpu_s(consumer) - cpu_before
            check(count_tasks(engine, prefix), events, mode)
            results.append(Result(mode, events, wall, cpu))
        finally:
            queues.stop()
    return results


def bench_ingest_alone(settings_env: dict[str, str], engine: sa.Engine, events: int) -> Result:
    """``ingest`` called in this process with batches of 100: the floor under both transports."""
    from producer.events.ingest import ingest
    from producer.events.publish import ChainPublisher
    from producer.events.sources import parse_body
    from schema.settings import Settings

    settings = Settings(
        database_url=settings_env["DATABASE_URL"], broker_url=settings_env["BROKER_URL"]
    )
    prefix = "alone/"
    with ChainPublisher(settings) as publisher:
        warmup = [parse_body(r2_body(f"warmup-{prefix}{n}"))[0] for n in range(WARMUP_EVENTS)]
        ingest(engine, publisher, warmup)
        cpu_before, started = time.process_time(), time.perf_counter()
        for start in range(0, events, 100):
            bodies = [
                r2_body(f"{prefix}{n:06}.mp4") for n in range(start, min(start + 100, events))
            ]
            ingest(engine, publisher, [e for b in bodies for e in parse_body(b)])
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_before
    check(count_tasks(engine, prefix), events, "ingest alone")
    return Result("ingest() alone, batch 100", events, wall, cpu)


def wait_drained(queues: QueuesServer, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while queues.state.backlog():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.005)


def check(found: int, expected: int, mode: str) -> None:
    if found != expected:
        raise SystemExit(f"{mode}: {found} task rows, expected {expected}")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def report(results: list[Result]) -> str:
    lines = [f"{'mode':<30} {'events':>7} {'events/s':>10} {'CPU ms/event':>13}"]
    lines.append("-" * len(lines[0]))
    for r in results:
        lines.append(
            f"{r.mode:<30} {r.events:>7} {r.events_per_s:>10.0f} {r.cpu_ms_per_event:>13.3f}"
        )
    by_mode = {r.mode: r for r in results}
    for batched, single in (
        ("webhook, batches of 100", "webhook, 1 per request"),
        ("pull, batch 100", "pull, batch 1"),
        (PULL_MODES[3][0], PULL_MODES[2][0]),
    ):
        b, s = by_mode[batched], by_mode[single]
        cpu_ratio = s.cpu_ms_per_event / b.cpu_ms_per_event
        cpu = f"{cpu_ratio:.1f}x less" if cpu_ratio >= 1 else f"{1 / cpu_ratio:.1f}x more"
        lines.append(
            f"{batched} vs {single}: {b.events_per_s / s.events_per_s:.1f}x events/s, "
            f"{cpu} CPU per event"
        )
    return "\n".join(lines)


def run_modes(
    env: dict[str, str], engine: sa.Engine, events: int, log: Path, reset: Any
) -> list[Result]:
    """Every mode on one broker; ``reset`` empties the broker between modes."""
    results = [bench_ingest_alone(env, engine, events)]
    reset()
    results += bench_webhook(env, engine, events, log)
    reset()
    results += bench_pull(env, engine, events, log)
    reset()
    return results


def compare(by_broker: dict[str, list[Result]]) -> str:
    """One line per mode, the brokers side by side, and RabbitMQ's events/s relative to Redis."""
    names = list(by_broker)
    head = f"{'mode':<30}" + "".join(f" {n + ' ev/s':>15} {n + ' CPU ms':>17}" for n in names)
    lines = [head + (f" {'rabbitmq/redis':>15}" if len(names) == 2 else ""), "-" * len(head)]
    for i, first in enumerate(by_broker[names[0]]):
        row = [by_broker[n][i] for n in names]
        line = f"{first.mode:<30}" + "".join(
            f" {r.events_per_s:>15.0f} {r.cpu_ms_per_event:>17.3f}" for r in row
        )
        if len(names) == 2:
            line += f" {row[1].events_per_s / row[0].events_per_s:>14.2f}x"
        lines.append(line)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    parser.add_argument(
        "--broker",
        choices=["redis", "rabbitmq", "both"],
        default="both",
        help="which broker(s) to measure; both: side by side in one run",
    )
    parser.add_argument("--redis-host", default="127.0.0.1")
    parser.add_argument("--redis-port", type=int, default=6379)
    parser.add_argument("--redis-db", type=int, default=int(os.environ.get("BENCH_REDIS_DB", "13")))
    parser.add_argument(
        "--rabbitmq-vhost",
        default=os.environ.get("BENCH_RABBITMQ_VHOST", "videofleet-bench"),
        help="virtual host on the local RabbitMQ, recreated (emptied) by rabbitmqctl",
    )
    parser.add_argument("--log", type=Path, default=Path("/tmp/videofleet-bench-ingest.log"))
    args = parser.parse_args()

    redis_client = redis.Redis(host=args.redis_host, port=args.redis_port, db=args.redis_db)
    brokers: dict[str, tuple[str, Any]] = {}
    if args.broker in ("redis", "both"):
        url = f"redis://{args.redis_host}:{args.redis_port}/{args.redis_db}"
        brokers["redis"] = (url, redis_client.flushdb)
    if args.broker in ("rabbitmq", "both"):
        brokers["rabbitmq"] = (
            rabbitmq_url(args.rabbitmq_vhost),
            lambda: rabbitmq_url(args.rabbitmq_vhost),
        )
    args.log.unlink(missing_ok=True)
    by_broker: dict[str, list[Result]] = {}
    try:
        for name, (url, reset) in brokers.items():
            reset()
            prepare_database(args.database_url)
            engine = make_engine(args.database_url)
            env = {**os.environ, "DATABASE_URL": args.database_url, "BROKER_URL": url}
            env["LOG_LEVEL"] = "WARNING"
            env["INGEST_BUCKETS"] = BUCKET  # the notifications' bucket must be served
            try:
                by_broker[name] = run_modes(env, engine, args.events, args.log, reset)
            finally:
                drop_tables(engine)
                engine.dispose()
    finally:
        redis_client.flushdb()
        redis_client.close()
    print(f"{args.events} events per mode, PostgreSQL {sa.engine.make_url(args.database_url).host}")
    for name, results in by_broker.items():
        print(f"\n## {name}")
        print(report(results))
    if len(by_broker) > 1:
        print("\n## brokers side by side")
        print(compare(by_broker))


if __name__ == "__main__":
    main()
