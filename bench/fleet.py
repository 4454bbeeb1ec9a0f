"""The fleet end to end: orchestration overhead and notification-to-completed latency.

Starts moto's S3 server (a child process), a fleet worker (``celery -A workers``, two
processes) and a bare no-op worker (``celery -A bench.noop``) on one broker, then:

- orchestration: the whole 3-step chain on a tiny video vs a bare chain of three no-op tasks,
  run one at a time, interleaved, medians; "overhead" is the chain's latency minus the media
  work measured inside the steps (the probe and the capture), i.e. what the DB writes, S3 calls
  and broker hops add;
- latency: 50 ten-second clips delivered as notifications at a steady pace, p50/p95 from the
  notification's ingest to the task row's ``completed`` time;
- burst: the same clips delivered at once, for the videos per minute the workers sustain;
- ``--lanes K``: only a burst of K tiny clips notified at once (batches of 100), twice in one
  run on Redis: FIFO (``QUEUE_PRIORITIES=false``) and priority lanes (depth-first), side by side:
  time to first completion, p50/p95 notification -> completed, drain time, videos/min.

With ``--broker both`` (the default) it runs on Redis, then on RabbitMQ (a vhost of the local
RabbitMQ, recreated with rabbitmqctl), and prints both side by side. The Redis database is
flushed at the start: point ``--broker-url`` at a Redis database of your own (the bare chain
stamps its end there on either broker).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psutil
import redis
import sqlalchemy as sa
from celery import Celery, chain

from bench import media
from producer.dev import localstack
from producer.events.ingest import ingest
from producer.events.publish import ChainPublisher
from producer.events.sources.r2 import parse_r2
from schema.broker import BrokerKind, broker_kind, celery_broker_config
from schema.db import make_engine
from schema.lifecycle import load_metadata
from schema.migrate import upgrade
from schema.settings import Settings
from schema.storage import make_s3_client
from schema.tables import metadata_obj, tasks
from tests.fleet import rabbitmq_url

BUCKET = "bench"
ENDED = ("completed", "failed")
POLL_S = 0.005


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _now_ms() -> int:
    return int(time.time() * 1000)


class Fleet:
    """The running stack and the producer's side of it."""

    def __init__(
        self, stack: ExitStack, *, broker_url: str, database_url: str, stamp_redis_url: str
    ) -> None:
        logdir = media.MEDIA_DIR / "logs"
        port = _free_port()
        localstack.spawn(
            stack,
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            log=logdir / "moto.log",
        )
        localstack.wait_listening("127.0.0.1", port, what="moto")
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "BROKER_URL": broker_url,
            "S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "S3_BUCKET": BUCKET,
            "LOG_LEVEL": "WARNING",
            "BENCH_STAMP_REDIS_URL": stamp_redis_url,
        }
        self.settings = Settings(
            **{k.lower(): v for k, v in self.env.items() if k.lower() in Settings.model_fields}
        )
        if broker_kind(broker_url) is BrokerKind.REDIS:
            redis.Redis.from_url(broker_url).flushdb()
        self.engine = _fresh_database(database_url)
        stack.callback(self.engine.dispose)
        localstack.ensure_bucket(self.settings)
        self.s3 = make_s3_client(self.settings)
        self.worker = localstack.start_worker(
            stack, logdir=logdir, name="bench-fleet", env=self.env
        )
        localstack.spawn(
            stack,
            [sys.executable, "-m", "celery", "-A", "bench.noop", "worker", "-Q", "bench-noop",
             "-c", "2", "-n", "bench-noop@%h", "--loglevel", "WARNING"],
            log=logdir / "bench-noop.log",
            env=self.env,
        )  # fmt: skip
        self.celery = Celery(broker=broker_url, set_as_current=False)
        # The bare chain's queue must be declared as the no-op worker declares it (quorum).
        self.celery.conf.update(celery_broker_config(self.settings))
        stack.callback(self.celery.close)
        self._wait_ready("bench-fleet@", "bench-noop@")
        self.publisher = stack.enter_context(ChainPublisher(self.settings))
        self.redis = redis.Redis.from_url(stamp_redis_url)

    def _wait_ready(self, *names: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            replies = [k for reply in self.celery.control.ping(timeout=0.5) for k in reply]
            if all(any(r.startswith(n) for r in replies) for n in names):
                return
        raise SystemExit(f"workers {names} did not start; see {media.MEDIA_DIR / 'logs'}")

    def upload(self, path: Path, key: str) -> dict[str, Any]:
        data = path.read_bytes()
        etag = self.s3.put_object(Bucket=BUCKET, Key=key, Body=data)["ETag"].strip('"')
        return {
            "account": "bench",
            "action": "PutObject",
            "bucket": BUCKET,
            "object": {"key": key, "size": len(data), "eTag": etag},
            "eventTime": "2026-11-28T10:00:00.000Z",
        }

    def worker_cpu_s(self) -> float:
        """CPU seconds used so far by the fleet worker and its pool processes ."""
        root = psutil.Process(self.worker.pid)
        total = 0.0
        for proc in [root, *root.children(recursive=True)]:
            try:
                t = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system + t.children_user + t.children_system
        return total

    def deliver(self, body: dict[str, Any]) -> str:
        (outcome,) = ingest(self.engine, self.publisher, [parse_r2(body)])
        return outcome.task_id

    def ended(self, task_ids: list[str]) -> dict[str, Any]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(tasks.c.id, tasks.c.status, tasks.c.updated_at, tasks.c.metadata).where(
                    tasks.c.id.in_(task_ids), tasks.c.status.in_(ENDED)
                )
            ).all()
        return {row.id: row for row in rows}

    def wait(self, task_ids: list[str], *, timeout_s: float = 300) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            done = self.ended(task_ids)
            if len(done) == len(task_ids):
                return done
            time.sleep(POLL_S)
        raise SystemExit(f"tasks did not end in {timeout_s} s")

    def noop_chain(self, chain_id: str) -> int:
        """Run the bare chain; return its latency in ms."""
        steps = [
            self.celery.signature(name, args=(chain_id,), immutable=True, queue="bench-noop")
            for name in ("bench.noop.step", "bench.noop.step", "bench.noop.last")
        ]
        self.redis.delete(f"bench:noop:{chain_id}")  # a stamp left by a run on the other broker
        started = _now_ms()
        chain(*steps).apply_async()
        while (stamp := self.redis.get(f"bench:noop:{chain_id}")) is None:
            time.sleep(POLL_S)
        return int(stamp) - started


def _fresh_database(url: str) -> sa.engine.Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    engine = make_engine(url)
    with engine.begin() as conn:
        metadata_obj.drop_all(conn)
        conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
    upgrade(engine)
    return engine


def orchestration(fleet: Fleet, *, chains: int) -> dict[str, float]:
    """Tiny-video chains vs no-op chains, one at a time, interleaved."""
    tiny = media.tiny()
    bodies = [fleet.upload(tiny, f"orch/{i:03d}.mp4") for i in range(chains + 2)]
    whole, overhead, bare = [], [], []
    for i, body in enumerate(bodies):
        started = _now_ms()
        task_id = fleet.deliver(body)
        row = fleet.wait([task_id])[task_id]
        if row.status != "completed":
            raise SystemExit(f"task {task_id} failed: see the worker log")
        latency = row.updated_at - started
        work = load_metadata(row.metadata).get("media_s") or {}
        noop = fleet.noop_chain(f"orch-{i}")
        if i < 2:
            continue  # warm-up: imports, connections
        whole.append(latency)
        overhead.append(latency - 1000 * (work.get("probe", 0) + work.get("capture", 0)))
        bare.append(noop)
    w, o, b = (statistics.median(x) for x in (whole, overhead, bare))
    print(f"\n## Orchestration: {chains} chains each, one at a time, medians")
    print(f"  whole chain, tiny video ({tiny.stat().st_size / 1e6:.1f} MB): {w:7.0f} ms")
    print(f"  of which orchestration (minus probe and capture): {o:7.0f} ms")
    print(f"  bare chain of three no-op tasks:                    {b:7.0f} ms")
    print(f"  whole / bare = {w / b:.2f}x; orchestration / bare = {o / b:.2f}x")
    print(f"  [{'PASS' if o / b <= 2 else 'FAIL'}] orchestration at most 2x the bare chain")
    return {"chain ms (tiny video)": w, "orchestration ms": o, "bare 3-task chain ms": b}


def latency(
    fleet: Fleet, *, videos: int, interval_s: float, prefix: str = "latency"
) -> dict[str, float]:
    """Ten-second clips at a steady pace; latency from ingest to ``completed``."""
    clip = media.short_clip()
    bodies = [fleet.upload(clip, f"{prefix}/{i:03d}.mp4") for i in range(videos)]
    delivered: dict[str, int] = {}
    ingest_cpu = 0.0
    worker_cpu = fleet.worker_cpu_s()
    started = time.monotonic()
    for i, body in enumerate(bodies):
        time.sleep(max(0.0, started + i * interval_s - time.monotonic()))
        now = _now_ms()
        cpu = time.process_time()
        delivered[fleet.deliver(body)] = now
        ingest_cpu += time.process_time() - cpu
    rows = fleet.wait(list(delivered))
    elapsed = time.monotonic() - started
    worker_cpu = fleet.worker_cpu_s() - worker_cpu
    failed = [r.id for r in rows.values() if r.status != "completed"]
    lat = sorted(rows[t].updated_at - delivered[t] for t in delivered)
    q = statistics.quantiles(lat, n=20, method="inclusive")
    print(f"\n## Latency: {videos} ten-second clips, one every {interval_s} s, 2 worker processes")
    print(f"  p50 {statistics.median(lat):.0f} ms, p95 {q[18]:.0f} ms, max {lat[-1]} ms")
    steps = [
        load_metadata(r.metadata).get("timings_s", {}).get("total", 0.0) for r in rows.values()
    ]
    print(f"  failed: {len(failed)}; all done in {elapsed:.1f} s")
    print(f"  median time inside the three steps: {1000 * statistics.median(steps):.0f} ms")
    print(f"  worker CPU per video (pool, Celery, DB, S3): {worker_cpu / videos:.3f} s")
    per_event_ms = 1000 * ingest_cpu / videos
    print(f"  producer CPU per event (ingest: insert, claim, publish): {per_event_ms:.1f} ms")
    return {
        "latency p50 ms": statistics.median(lat),
        "latency p95 ms": q[18],
        "videos/min": 60 * videos / elapsed,
        "worker CPU s/video": worker_cpu / videos,
        "producer CPU ms/event": per_event_ms,
        "failed": len(failed),
    }


# Notifications per ``ingest`` call in the lanes burst (a webhook or pull batch).
BURST_BATCH = 100
FIRST_COMPLETION_TARGET_S = 5.0
P50_OF_DRAIN_TARGET = 0.55


def lanes_burst(fleet: Fleet, *, videos: int, priorities: bool) -> dict[str, float]:
    """``videos`` tiny clips notified at once; times from the first notification's ingest."""
    mode = "lanes" if priorities else "fifo"
    clip = media.tiny()
    bodies = [fleet.upload(clip, f"burst-{mode}/{i:04d}.mp4") for i in range(videos)]
    settings = fleet.settings.model_copy(update={"queue_priorities": priorities})
    delivered: dict[str, int] = {}
    with ChainPublisher(settings) as publisher:
        started = _now_ms()
        for i in range(0, videos, BURST_BATCH):
            events = [parse_r2(b) for b in bodies[i : i + BURST_BATCH]]
            now = _now_ms()
            delivered |= {o.task_id: now for o in ingest(fleet.engine, publisher, events)}
        rows = fleet.wait(list(delivered), timeout_s=60 + videos)
    failed = [r.id for r in rows.values() if r.status != "completed"]
    lat = sorted(rows[t].updated_at - delivered[t] for t in delivered)
    drain_s = (max(r.updated_at for r in rows.values()) - started) / 1000
    first_s = (min(r.updated_at for r in rows.values()) - started) / 1000
    p50_s = statistics.median(lat) / 1000
    p95_s = statistics.quantiles(lat, n=20, method="inclusive")[18] / 1000
    print(f"\n## Burst, {mode}: {videos} tiny clips notified at once, 2 worker processes")
    print(
        f"  first completed after {first_s:.2f} s; all after {drain_s:.1f} s; failed {len(failed)}"
    )
    print(
        f"  notification -> completed: p50 {p50_s:.1f} s ({p50_s / drain_s:.2f}x drain),"
        f" p95 {p95_s:.1f} s"
    )
    print(f"  videos/min: {60 * videos / drain_s:.0f}")
    ok_first = first_s < FIRST_COMPLETION_TARGET_S
    ok_p50 = p50_s <= P50_OF_DRAIN_TARGET * drain_s
    print(
        f"  [{'PASS' if ok_first else 'FAIL'}] first completion < {FIRST_COMPLETION_TARGET_S:.0f} s"
    )
    print(f"  [{'PASS' if ok_p50 else 'FAIL'}] p50 <= {P50_OF_DRAIN_TARGET}x drain time")
    return {
        "first completion s": first_s,
        "p50 s": p50_s,
        "p95 s": p95_s,
        "drain s": drain_s,
        "p50 / drain": p50_s / drain_s,
        "videos/min": 60 * videos / drain_s,
        "failed": len(failed),
    }


def _side_by_side(figures: dict[str, dict[str, float]], title: str = "Brokers") -> None:
    names = list(figures)
    print(f"\n## {title} side by side")
    print(f"  {'figure':<26}" + "".join(f" {n:>10}" for n in names))
    for key in figures[names[0]]:
        print(f"  {key:<26}" + "".join(f" {figures[n][key]:>10.2f}" for n in names))


def main() -> None:
    """Start the stack, run both benches, stop everything."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--broker", choices=["redis", "rabbitmq", "both"], default="both")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/12", help="the Redis one")
    parser.add_argument(
        "--rabbitmq-vhost",
        default="videofleet-bench-fleet",
        help="virtual host on the local RabbitMQ, recreated (emptied) by rabbitmqctl",
    )
    parser.add_argument("--database-url", default=f"sqlite:///{media.MEDIA_DIR / 'bench-fleet.db'}")
    parser.add_argument("--chains", type=int, default=20)
    parser.add_argument("--videos", type=int, default=50)
    parser.add_argument("--interval-s", type=float, default=1.0)
    parser.add_argument(
        "--lanes",
        type=int,
        metavar="K",
        help="only the burst of K clips, FIFO vs priority lanes on Redis (e.g. 200 or 1000)",
    )
    args = parser.parse_args()
    media.MEDIA_DIR.mkdir(exist_ok=True)
    if args.lanes:
        _lanes_main(args.broker_url, args.database_url, args.lanes)
        return
    brokers = {}
    if args.broker in ("redis", "both"):
        brokers["redis"] = args.broker_url
    if args.broker in ("rabbitmq", "both"):
        brokers["rabbitmq"] = rabbitmq_url(args.rabbitmq_vhost)
    figures = {}
    for name, url in brokers.items():
        print(f"\n# {name}")
        with ExitStack() as stack:
            fleet = Fleet(
                stack,
                broker_url=url,
                database_url=args.database_url,
                stamp_redis_url=args.broker_url,
            )
            figures[name] = orchestration(fleet, chains=args.chains)
            figures[name] |= latency(fleet, videos=args.videos, interval_s=args.interval_s)
            # All at once: the videos/min two worker processes sustain on this broker.
            burst = latency(fleet, videos=args.videos, interval_s=0, prefix="burst")
            figures[name] |= {f"burst {k}": v for k, v in burst.items() if "latency" not in k}
    if len(figures) > 1:
        _side_by_side(figures)


def _lanes_main(broker_url: str, database_url: str, videos: int) -> None:
    """FIFO then priority lanes, each burst on an empty queue, on one Redis fleet."""
    with ExitStack() as stack:
        fleet = Fleet(
            stack, broker_url=broker_url, database_url=database_url, stamp_redis_url=broker_url
        )
        figures = {
            "fifo": lanes_burst(fleet, videos=videos, priorities=False),
            "lanes": lanes_burst(fleet, videos=videos, priorities=True),
        }
    _side_by_side(figures, title="FIFO and priority lanes")


if __name__ == "__main__":
    main()
