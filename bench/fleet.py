"""The fleet end to end: orchestration overhead, latency, and latency under deep queues.

Starts the stack of ``bench.fleetstack`` (moto's S3 server, a fleet worker with two processes,
a bare no-op worker, PostgreSQL) on each broker, then:

- orchestration: the whole 3-step chain on a tiny video vs a bare chain of three no-op tasks,
  run one at a time, interleaved, medians; "overhead" is the chain's latency minus the media
  work measured inside the steps (the probe and the capture), i.e. what the DB writes, S3 calls
  and broker hops add;
- latency: 50 ten-second clips delivered as notifications at a steady pace, p50/p95 from the
  notification's ingest to the task row's ``completed`` time;
- all at once: the same clips delivered at once, for the videos per minute the workers sustain;
- on Redis only (``bench.burst``), FIFO beside priority lanes: a burst of 1,000 3-second clips
  notified at once, and upload-API videos arriving during a 1,000-video poller backfill;
- on Redis only (``bench.baseline``), the same burst through the webhook on today's tree and on
  the code before issue 12, each version's own worker and server: the throughput target.

It ends with every target as ``[PASS]`` or ``[FAIL]``. With ``--broker both`` (the default) it
runs on Redis, then on RabbitMQ (a vhost of the local RabbitMQ, recreated with rabbitmqctl),
and prints both side by side. The Redis database is flushed at the start: point
``--broker-url`` at a Redis database of your own (the bare chain stamps its end there on either
broker). Sizes: ``--chains``, ``--videos``, ``--burst``, ``--backfill``, ``--uploads``,
``--versus`` (0 skips a part).
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import ExitStack

from bench import baseline, burst, media
from bench.burst import MODES, Target
from bench.fleetstack import Fleet, now_ms
from producer.dev.localstack import rabbitmq_url

ORCHESTRATION_TARGET = 2.0
DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/videofleet_bench_fleet"


def orchestration(fleet: Fleet, *, chains: int) -> tuple[dict[str, float], Target]:
    """Tiny-video chains vs no-op chains, one at a time, interleaved."""
    tiny = media.tiny()
    bodies = [fleet.upload(tiny, f"orch/{i:03d}.mp4") for i in range(chains + 2)]
    whole, overhead, bare = [], [], []
    for i, body in enumerate(bodies):
        started = now_ms()
        task_id = fleet.deliver(body)
        row = fleet.wait([task_id])[task_id]
        if row.status != "completed":
            raise SystemExit(f"task {task_id} failed: see the worker log")
        latency = row.updated_at - started
        work = row.metadata.media_s
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
    target = Target(
        f"orchestration <= {ORCHESTRATION_TARGET:g}x the bare chain",
        f"{o:.0f} ms vs {b:.0f} ms = {o / b:.2f}x (whole chain {w / b:.2f}x)",
        o / b <= ORCHESTRATION_TARGET,
    )
    print(f"  {target.line()}")
    return {"chain ms (tiny video)": w, "orchestration ms": o, "bare 3-task chain ms": b}, target


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
        now = now_ms()
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
    steps = [r.metadata.timings_s.get("total", 0.0) for r in rows.values()]
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


def _side_by_side(figures: dict[str, dict[str, float]], title: str = "Brokers") -> None:
    names = list(figures)
    print(f"\n## {title} side by side")
    print(f"  {'figure':<26}" + "".join(f" {n:>10}" for n in names))
    for key in figures[names[0]]:
        print(f"  {key:<26}" + "".join(f" {figures[n][key]:>10.2f}" for n in names))


def main() -> None:
    """Start the stack on each broker, run the benches, print every target."""
    args = _parser().parse_args()
    media.MEDIA_DIR.mkdir(exist_ok=True)
    brokers = {}
    if args.broker in ("redis", "both"):
        brokers["redis"] = args.broker_url
    if args.broker in ("rabbitmq", "both"):
        brokers["rabbitmq"] = rabbitmq_url(args.rabbitmq_vhost)
    figures: dict[str, dict[str, float]] = {}
    lanes: dict[str, dict[str, float]] = {}
    targets: list[Target] = []
    for name, url in brokers.items():
        print(f"\n# {name}", flush=True)
        with ExitStack() as stack:
            fleet = Fleet(
                stack,
                broker_url=url,
                database_url=args.database_url,
                stamp_redis_url=args.broker_url,
            )
            figures[name] = {}
            if args.chains:
                orch, target = orchestration(fleet, chains=args.chains)
                figures[name] |= orch
                targets.append(Target(f"{target.name} ({name})", target.measured, target.ok))
            if args.videos:
                figures[name] |= latency(fleet, videos=args.videos, interval_s=args.interval_s)
                # All at once: the videos/min two worker processes sustain on this broker.
                once = latency(fleet, videos=args.videos, interval_s=0, prefix="at-once")
                figures[name] |= {f"burst {k}": v for k, v in once.items() if "latency" not in k}
            if name == "redis":
                targets += _deep_queues(fleet, args, lanes)
    if args.versus and "redis" in brokers:
        targets.append(
            baseline.versus(
                rev=args.baseline_rev,
                videos=args.versus,
                broker_url=args.broker_url,
                database_url=args.database_url,
            )
        )
    if len(figures) > 1 and all(figures.values()):
        _side_by_side(figures)
    for scenario in ("burst", "backfill"):
        if f"{scenario} lanes" in lanes:
            by_mode = {mode: lanes[f"{scenario} {mode}"] for mode in MODES}
            _side_by_side(by_mode, title=f"{scenario.capitalize()}: FIFO and priority lanes")
    print("\n## Targets")
    for target in targets:
        print(f"  {target.line()}")


def _deep_queues(
    fleet: Fleet, args: argparse.Namespace, figures: dict[str, dict[str, float]]
) -> list[Target]:
    """The burst and the backfill, FIFO then lanes; fills ``figures``, returns the targets."""
    targets: list[Target] = []
    if args.burst:
        for mode, on in MODES.items():
            figures[f"burst {mode}"] = burst.burst(fleet, videos=args.burst, priorities=on)
        targets += burst.burst_targets(figures["burst fifo"], figures["burst lanes"])
    if args.backfill and args.uploads:
        for mode, on in MODES.items():
            figures[f"backfill {mode}"] = burst.backfill(
                fleet,
                videos=args.backfill,
                uploads=args.uploads,
                interval_s=args.upload_interval_s,
                priorities=on,
            )
        targets += burst.backfill_targets(figures["backfill fifo"], figures["backfill lanes"])
    return targets


def _parser() -> argparse.ArgumentParser:
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
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help="emptied at the start; a missing PostgreSQL database is created",
    )
    parser.add_argument("--chains", type=int, default=20, help="orchestration: chains each")
    parser.add_argument("--videos", type=int, default=50, help="latency: clips at a pace")
    parser.add_argument("--interval-s", type=float, default=1.0, help="latency: the pace")
    parser.add_argument("--burst", type=int, default=1000, help="clips notified at once")
    parser.add_argument("--backfill", type=int, default=1000, help="clips the poller lists")
    parser.add_argument(
        "--uploads", type=int, default=30, help="upload-API videos during the backfill"
    )
    parser.add_argument(
        "--upload-interval-s", type=float, default=2.0, help="seconds between those uploads"
    )
    parser.add_argument(
        "--versus",
        type=int,
        default=1000,
        help="clips a round in the burst beside the code before issue 12 (bench.baseline)",
    )
    parser.add_argument("--baseline-rev", default=baseline.BASELINE_REV, help="that code's commit")
    return parser


if __name__ == "__main__":
    main()
