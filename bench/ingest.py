"""Ingest throughput and CPU cost per event: webhook and pull consumer, batched vs one by one.

    .venv/bin/python -m bench.ingest --events 2000

Two publish baselines, in this process and without a database, each sending the same 3-step
chain (``validate -> thumbnails -> update``, with the normal lane's priorities) once per event:

- ``celery chain.delay() loop``: what a plain Celery producer does, one ``chain(...).delay()``
  per event, on a Celery app configured like the producer's (same broker options, task-sent
  events on);
- ``kombu publish loop``: the broker's floor, one ``kombu.Producer.publish`` per event of the
  message Celery sends for the chain's first step (no task-sent event).

Then ``ingest()`` called in-process with batches of 100 (the floor under every transport), and
six transport modes, all on PostgreSQL and a real broker:

- webhook, batches of 100: ``videofleet serve`` (uvicorn) in a child process, an HTTP client
  posting Worker-forwarded batches of 100 R2 notifications;
- webhook, one per request: the same, one notification per POST;
- pull, batch 100: ``videofleet pull`` in a child process against the local Queues API
  stand-in (``producer/dev/queues_standin.py``), ``PULL_BATCH_SIZE=100``;
- pull, batch 1: the same with ``PULL_BATCH_SIZE=1``;
- pull, 50 ms API, 1 loop / 4 loops: batch 100 against a server that holds every pull and ack
  50 ms, as a distant API does, with ``PULL_CONCURRENCY`` 1 and 4.

Events/s is wall-clock throughput from the first request to the last event ingested; CPU ms per
event is the producer process's CPU (user + system: psutil for a child, ``process_time`` in this
process) over the same interval. Each event is a distinct upload, so every one is inserted and
published. The database's tables are dropped and the Redis database flushed at the end.

Targets, printed ``[PASS]``/``[FAIL]`` per broker: each batched transport (webhook batches of
100, pull batch 100) at least ``TARGET_VS_DELAY``x the events/s of a ``delay()`` loop measured
just before it (the machine's load moves over the minutes of a run; the target is a ratio), and
under ``TARGET_CPU_MS_PER_EVENT`` ms of producer CPU per event. The load average is printed
with the figures: on a busy machine CPU per event grows with it.

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
import uuid
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

from producer.dev.localstack import is_listening, rabbitmq_url  # noqa: E402
from producer.dev.queues_standin import QueuesServer  # noqa: E402
from producer.events.sources.r2 import r2_notification  # noqa: E402
from schema.db import make_engine  # noqa: E402
from schema.migrate import upgrade  # noqa: E402
from schema.tables import metadata_obj, tasks  # noqa: E402

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/videofleet_bench"
TOKEN = "bench-webhook-token"  # noqa: S105  (a local throwaway server)
CLI = [sys.executable, "-c", "from producer.cli import main; main()"]
WARMUP_EVENTS = 100
PULL_WARMUP_EVENTS = 10
TIMEOUT_S = 600.0
# A round trip to Cloudflare's API from a server elsewhere: the latency modes hold every pull and
# ack this long, to show what PULL_CONCURRENCY buys.
API_LATENCY_MS = 50
# The ingest targets (issue 12): batched ingest against the plain delay() loop, CPU per event.
TARGET_VS_DELAY = 2.0
TARGET_CPU_MS_PER_EVENT = 0.5
KOMBU_MODE = "kombu publish loop"
MODE_WIDTH = 42
WEBHOOK_MODES = {100: "webhook, batches of 100", 1: "webhook, 1 per request"}
# Each batched transport and the delay() loop run just before it, measured side by side: the
# machine's load moves over the minutes a run takes, and the target is their ratio.
BATCHED_MODES = {
    WEBHOOK_MODES[100]: "celery chain.delay() loop, before webhook",
    "pull, batch 100": "celery chain.delay() loop, before pull",
}


@dataclass(frozen=True)
class Measurement:
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


def r2_body(key: str) -> dict[str, Any]:
    """The R2 notification of a 1 KiB upload of ``key`` to the bench bucket."""
    return r2_notification(bucket=BUCKET, key=key, size=1024, etag=f"{abs(hash(key)):032x}"[:32])


def cpu_s(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def prepare_database(url: str) -> None:
    ensure_database(url)
    engine = make_engine(url)
    drop_tables(engine)
    upgrade(engine)
    engine.dispose()


def ensure_database(url: str) -> None:
    """Create ``url``'s PostgreSQL database when it is missing (SQLite creates its own)."""
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


def bench_webhook(
    env: dict[str, str], engine: sa.Engine, events: int, log: Path, *, batch: int
) -> Measurement:
    """``videofleet serve`` in a child process, ``events`` notifications posted ``batch`` a time."""
    mode = WEBHOOK_MODES[batch]
    port = free_port()
    server_env = {**env, "WEBHOOK_TOKEN": TOKEN, "WEBHOOK_MAX_BODY_BYTES": str(16 * 1024 * 1024)}
    args = [*CLI, "serve", "--host", "127.0.0.1", "--port", str(port)]
    with child(args, server_env, log) as proc:
        deadline = time.monotonic() + 60
        while not is_listening("127.0.0.1", port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"videofleet serve did not start; see {log}")
            time.sleep(0.05)
        server = psutil.Process(proc.pid)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
            prefix = f"webhook-{batch}/"
            post_all(client, [f"warmup-{prefix}{n}" for n in range(WARMUP_EVENTS)], batch)
            keys = [f"{prefix}{n:06}.mp4" for n in range(events)]
            cpu_before, started = cpu_s(server), time.perf_counter()
            post_all(client, keys, batch)
            wall, cpu = time.perf_counter() - started, cpu_s(server) - cpu_before
    check(count_tasks(engine, prefix), events, mode)
    return Measurement(mode, events, wall, cpu)


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


def bench_pull(
    env: dict[str, str],
    engine: sa.Engine,
    events: int,
    log: Path,
    modes: tuple[tuple[str, int, int, float], ...] = PULL_MODES,
) -> list[Measurement]:
    results = []
    for mode, batch, concurrency, latency_s in modes:
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
            results.append(Measurement(mode, events, wall, cpu))
        finally:
            queues.stop()
    return results


def bench_ingest_alone(settings_env: dict[str, str], engine: sa.Engine, events: int) -> Measurement:
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
    return Measurement("ingest() alone, batch 100", events, wall, cpu)


def producer_app(broker_url: str) -> Any:
    """A Celery app configured as ``ChainPublisher`` configures its own, for the baselines.

    Same broker options (Redis priority levels, RabbitMQ quorum queue and confirms), JSON,
    task-sent events on: the baselines differ from the producer only in how they publish.
    """
    from celery import Celery

    from schema.broker import celery_broker_config
    from schema.settings import Settings

    settings = Settings(database_url="sqlite://", broker_url=broker_url)
    app = Celery("videofleet-bench-baseline", set_as_current=False)
    app.conf.update(
        broker_url=broker_url,
        task_serializer="json",
        task_send_sent_event=True,
        **celery_broker_config(settings),
    )
    return app


def chain_signatures(app: Any, broker_url: str, task_id: str) -> list[Any]:
    """The three immutable steps of one chain by name, each with its lane's priority."""
    from schema.broker import priorities_enabled
    from schema.lanes import Lane, priority
    from schema.message import QUEUE, TASK_NAMES
    from schema.settings import Settings
    from schema.status import STEPS

    settings = Settings(database_url="sqlite://", broker_url=broker_url)
    prioritised = priorities_enabled(settings)
    return [
        app.signature(
            TASK_NAMES[step],
            args=(task_id,),
            immutable=True,
            queue=QUEUE,
            **({"priority": priority(Lane.NORMAL, step)} if prioritised else {}),
        )
        for step in STEPS
    ]


def queued_messages(app: Any) -> int:
    """Messages waiting in ``video-events`` (on Redis: over every priority list)."""
    from schema.message import QUEUE

    with app.connection_for_write() as conn:
        return int(conn.default_channel.queue_declare(QUEUE, passive=True).message_count)


def bench_delay_loop(broker_url: str, events: int, mode: str) -> Measurement:
    """Baseline: one plain ``chain(...).delay()`` per event, no database, no batching."""
    from celery import chain

    app = producer_app(broker_url)
    try:
        ids = [str(uuid.uuid4()) for _ in range(WARMUP_EVENTS + events)]
        signatures = [chain_signatures(app, broker_url, task_id) for task_id in ids]
        for steps in signatures[:WARMUP_EVENTS]:
            chain(*steps).delay()
        cpu_before, started = time.process_time(), time.perf_counter()
        for steps in signatures[WARMUP_EVENTS:]:
            chain(*steps).delay()
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_before
        check(queued_messages(app), WARMUP_EVENTS + events, mode)
    finally:
        app.close()
    return Measurement(mode, events, wall, cpu)


def bench_kombu_loop(broker_url: str, events: int) -> Measurement:
    """Baseline: one bare ``kombu.Producer.publish`` per event of the chain's first message.

    The message is the one Celery sends for the first step (protocol 2 headers, the body with
    the later steps in its ``chain``), built once; each event gets its own ids, as a producer
    that formats its messages by hand would. No task-sent event, no retry wrapper.
    """
    import kombu

    from schema.message import QUEUE

    app = producer_app(broker_url)
    try:
        first, *rest = chain_signatures(app, broker_url, "template")
        template = app.amqp.as_task_v2(
            "template",
            first["task"],
            args=first["args"],
            chain=[dict(step) for step in reversed(rest)],
            root_id="template",
            argsrepr="('template',)",
            kwargsrepr="{}",
        )
        priority = first["options"].get("priority")
        queue = app.amqp.queues[QUEUE]
        # Routed as Celery routes it: a direct exchange (Redis) goes by the default exchange to
        # the queue's name, so that kombu looks up no binding table per message.
        if queue.exchange.type == "direct":
            exchange, routing_key = "", queue.name
        else:
            exchange, routing_key = queue.exchange.name, queue.routing_key
        ids = [str(uuid.uuid4()) for _ in range(WARMUP_EVENTS + events)]
        with app.connection_for_write() as conn:
            producer = kombu.Producer(conn.default_channel, serializer="json")
            producer.maybe_declare(queue)

            def publish(task_id: str) -> None:
                _, kwargs, embed = template.body
                chain = [{**step, "args": [task_id]} for step in embed["chain"]]
                headers = {
                    **template.headers,
                    "id": task_id,
                    "root_id": task_id,
                    "argsrepr": repr((task_id,)),
                }
                producer.publish(
                    ([task_id], kwargs, {**embed, "chain": chain}),
                    exchange=exchange,
                    routing_key=routing_key,
                    headers=headers,
                    priority=priority,
                    **{**template.properties, "correlation_id": task_id},
                )

            for task_id in ids[:WARMUP_EVENTS]:
                publish(task_id)
            cpu_before, started = time.process_time(), time.perf_counter()
            for task_id in ids[WARMUP_EVENTS:]:
                publish(task_id)
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu_before
        check(queued_messages(app), WARMUP_EVENTS + events, KOMBU_MODE)
    finally:
        app.close()
    return Measurement(KOMBU_MODE, events, wall, cpu)


def wait_drained(queues: QueuesServer, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while queues.state.backlog():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.005)


def check(found: int, expected: int, mode: str) -> None:
    if found != expected:
        raise SystemExit(f"{mode}: {found} task rows, expected {expected}")


def load_average() -> str:
    """The machine's load average, to read the figures by (other processes share the cores)."""
    return ", ".join(f"{n:.2f}" for n in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def report(results: list[Measurement]) -> str:
    lines = [f"{'mode':<{MODE_WIDTH}} {'events':>7} {'events/s':>10} {'CPU ms/event':>13}"]
    lines.append("-" * len(lines[0]))
    for r in results:
        lines.append(
            f"{r.mode:<{MODE_WIDTH}} {r.events:>7} {r.events_per_s:>10.0f}"
            f" {r.cpu_ms_per_event:>13.3f}"
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
    for batched, delay in BATCHED_MODES.items():
        for baseline in (delay, KOMBU_MODE):
            lines.append(ratio_line(by_mode[batched], by_mode[baseline]))
    return "\n".join(lines)


def ratio_line(mode: Measurement, baseline: Measurement) -> str:
    """``mode`` against ``baseline``: events/s and CPU per event, as ratios."""
    cpu_ratio = baseline.cpu_ms_per_event / mode.cpu_ms_per_event
    cpu = f"{cpu_ratio:.1f}x less" if cpu_ratio >= 1 else f"{1 / cpu_ratio:.1f}x more"
    return (
        f"{mode.mode} vs {baseline.mode}: "
        f"{mode.events_per_s / baseline.events_per_s:.1f}x events/s, {cpu} CPU per event"
    )


def targets(results: list[Measurement]) -> list[tuple[bool, str]]:
    """Each ingest target on one broker's results: (met, what was measured)."""
    by_mode = {r.mode: r for r in results}
    checks = []
    for mode, delay_mode in BATCHED_MODES.items():
        r, delay = by_mode[mode], by_mode[delay_mode]
        ratio = r.events_per_s / delay.events_per_s
        checks.append(
            (
                ratio >= TARGET_VS_DELAY,
                f"{mode}: events/s >= {TARGET_VS_DELAY:g}x the delay() loop: {ratio:.1f}x "
                f"({r.events_per_s:,.0f} vs {delay.events_per_s:,.0f})",
            )
        )
        checks.append(
            (
                r.cpu_ms_per_event < TARGET_CPU_MS_PER_EVENT,
                f"{mode}: CPU per event < {TARGET_CPU_MS_PER_EVENT} ms: "
                f"{r.cpu_ms_per_event:.3f} ms",
            )
        )
    return checks


def report_targets(results: list[Measurement]) -> str:
    return "\n".join(f"[{'PASS' if met else 'FAIL'}] {what}" for met, what in targets(results))


def run_modes(
    env: dict[str, str], engine: sa.Engine, events: int, log: Path, reset: Any
) -> list[Measurement]:
    """Every mode on one broker, in the table's order; ``reset`` empties the broker after each.

    Each batched transport is measured right after a delay() loop of its own (its target is
    the ratio of the two), before the slow one-at-a-time modes.
    """
    url = env["BROKER_URL"]
    webhook_delay, pull_delay = BATCHED_MODES.values()
    measured: list[Measurement] = []
    for measure in (
        lambda: [bench_delay_loop(url, events, webhook_delay)],
        lambda: [bench_webhook(env, engine, events, log, batch=100)],
        lambda: [bench_delay_loop(url, events, pull_delay)],
        lambda: bench_pull(env, engine, events, log, PULL_MODES[:1]),
        lambda: [bench_kombu_loop(url, events)],
        lambda: [bench_ingest_alone(env, engine, events)],
        lambda: [bench_webhook(env, engine, events, log, batch=1)],
        lambda: bench_pull(env, engine, events, log, PULL_MODES[1:]),
    ):
        measured += measure()
        reset()
    order = [
        webhook_delay,
        pull_delay,
        KOMBU_MODE,
        "ingest() alone, batch 100",
        *WEBHOOK_MODES.values(),
        *(mode for mode, *_ in PULL_MODES),
    ]
    return sorted(measured, key=lambda r: order.index(r.mode))


def compare(by_broker: dict[str, list[Measurement]]) -> str:
    """One line per mode, the brokers side by side, and RabbitMQ's events/s relative to Redis."""
    names = list(by_broker)
    head = f"{'mode':<{MODE_WIDTH}}" + "".join(
        f" {n + ' ev/s':>15} {n + ' CPU ms':>17}" for n in names
    )
    lines = [head + (f" {'rabbitmq/redis':>15}" if len(names) == 2 else ""), "-" * len(head)]
    for i, first in enumerate(by_broker[names[0]]):
        row = [by_broker[n][i] for n in names]
        line = f"{first.mode:<{MODE_WIDTH}}" + "".join(
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
    by_broker: dict[str, list[Measurement]] = {}
    loads = [load_average()]
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
    loads.append(load_average())
    print(f"{args.events} events per mode, PostgreSQL {sa.engine.make_url(args.database_url).host}")
    print(f"load average (1, 5, 15 min) at the start: {loads[0]}; at the end: {loads[1]}")
    for name, results in by_broker.items():
        print(f"\n## {name}")
        print(report(results))
    for name, results in by_broker.items():
        print(f"\n## targets, {name}")
        print(report_targets(results))
    if len(by_broker) > 1:
        print("\n## brokers side by side")
        print(compare(by_broker))


if __name__ == "__main__":
    main()
