"""Deep queues on Redis, FIFO beside priority lanes: who completes first, and how soon.

Two scenarios, each run twice on one fleet (two worker processes), first with
``QUEUE_PRIORITIES=false`` (FIFO: every step to the back of the queue, as before lanes), then
with priority lanes (``schema.lanes``):

- **burst**: N uploads of a 3-second clip (one file under N keys) notified at once, in
  webhook-sized batches of 100 through ``ingest`` (the ``normal`` lane). Time to first
  completion, p50/p95 notification -> ``completed``, p50 as a fraction of the drain time,
  videos/min.
- **backfill**: N uploads listed by the real poller (``videofleet poll --once``: the ``bulk``
  lane) while a stream of videos arrives through the real upload API of ``videofleet serve``
  (``POST /api/upload-url``, a PUT to the presigned URL, then the R2 notification on the
  server's webhook: a ``videos`` row with an owner, so the producer sends it ``interactive``).
  The stream's p50/p95 notification -> ``completed``; the stream stops when the backfill has
  drained, so every upload measured arrived behind it.

Times are the rows' own (``updated_at`` of the ``completed`` row, stamped by the worker) minus
the bench's clock when it sent the notification; both are this machine's wall clock.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
import sqlalchemy as sa

from bench import media
from bench.cpumeter import CpuMeter, listening_pid, print_shares
from bench.fleetstack import BURST_POLL_S, LOGDIR, Fleet, free_port, now_ms, r2_notification
from producer.dev import localstack
from producer.events.ingest import ingest
from producer.events.publish import ChainPublisher
from producer.events.sources.r2 import parse_r2
from schema.tables import tasks

CLIP_S = 3
# Notifications per ``ingest`` call in the burst (a Worker-forwarded webhook or pull batch).
BURST_BATCH = 100
FIRST_COMPLETION_TARGET_S = 5.0
P50_OF_DRAIN_TARGET = 0.55
UPLOAD_P50_TARGET_S = 5.0
MODES = {"fifo": False, "lanes": True}
VIDEOFLEET = [sys.executable, "-m", "producer"]
WEBHOOK_TOKEN = "bench-fleet-webhook-token"  # noqa: S105  (a local throwaway server)
SERVER_START_S = 60.0
WORKER = "fleet worker (2 processes)"


@dataclass(frozen=True)
class Target:
    """One target of the issue, measured: ``[PASS]`` or ``[FAIL]`` and the figures."""

    name: str
    measured: str
    ok: bool

    def line(self) -> str:
        """``[PASS] name: measured``."""
        return f"[{'PASS' if self.ok else 'FAIL'}] {self.name}: {self.measured}"


def clip() -> Path:
    """A 3-second 640x360 H.264 clip with sound, 2-second GOP (cut from the 10-second one)."""
    path = media.MEDIA_DIR / f"clip-{CLIP_S}s.mp4"
    if not path.exists():
        tmp = path.with_name(f".tmp-{path.name}")
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(media.short_clip()),
             "-t", str(CLIP_S), "-c:v", "libx264", "-preset", "ultrafast", "-g", "60",
             "-c:a", "copy", str(tmp)],
            check=True,
        )  # fmt: skip
        tmp.rename(path)
    return path


def quantiles_s(latencies_ms: list[int]) -> tuple[float, float]:
    """p50 and p95 in seconds."""
    p95 = statistics.quantiles(latencies_ms, n=20, method="inclusive")[18]
    return statistics.median(latencies_ms) / 1000, p95 / 1000


def _meter(fleet: Fleet) -> CpuMeter:
    port = int(fleet.broker_url.rsplit(":", 1)[1].split("/", 1)[0])
    trees = {WORKER: fleet.worker.pid, "moto (S3)": fleet.moto.pid}
    if (redis_pid := listening_pid(port)) is not None:
        trees["redis-server"] = redis_pid
    return CpuMeter(trees=trees, engine=fleet.engine)


def burst(fleet: Fleet, *, videos: int, priorities: bool) -> dict[str, float]:
    """``videos`` clips notified at once; times from the first notification's ingest."""
    mode = "lanes" if priorities else "fifo"
    prefix = f"burst-{mode}/"
    keys = [f"{prefix}{i:04d}.mp4" for i in range(videos)]
    events = [parse_r2(b) for b in fleet.upload_many(clip(), keys)]
    settings = fleet.settings.model_copy(update={"queue_priorities": priorities})
    delivered: dict[str, int] = {}
    meter = _meter(fleet)
    meter.start()
    with ChainPublisher(settings) as publisher:
        started = now_ms()
        for i in range(0, videos, BURST_BATCH):
            now = now_ms()
            outcomes = ingest(fleet.engine, publisher, events[i : i + BURST_BATCH])
            delivered |= {o.task_id: now for o in outcomes}
        rows, under_way = fleet.wait_many(list(delivered), timeout_s=60 + 2 * videos, prefix=prefix)
    shares = meter.stop()
    done = [r for r in rows.values() if r.status == "completed"]
    if not done:
        raise SystemExit(f"burst {mode}: no video completed; see {LOGDIR}")
    lat = sorted(r.updated_at - delivered[r.id] for r in done)
    drain_s = (max(r.updated_at for r in done) - started) / 1000
    first_s = (min(r.updated_at for r in done) - started) / 1000
    p50_s, p95_s = quantiles_s(lat)
    print(f"\n## Burst, {mode}: {videos} {CLIP_S}-second clips notified at once, 2 processes")
    notify_s = (max(delivered.values()) - started) / 1000
    print(f"  notified in batches of {BURST_BATCH}, the last after {notify_s:.2f} s")
    print(f"  first completed after {first_s:.2f} s; all after {drain_s:.1f} s")
    print(
        f"  notification -> completed: p50 {p50_s:.1f} s ({p50_s / drain_s:.2f}x drain),"
        f" p95 {p95_s:.1f} s; failed {videos - len(done)}"
    )
    worker_cpu = shares[WORKER] / videos
    print(f"  videos/min: {60 * videos / drain_s:.0f}; worker CPU per video {worker_cpu:.3f} s")
    print(
        f"  videos under way (started, not ended), every {BURST_POLL_S} s:"
        f" median {statistics.median(under_way or [0]):.0f}, max {max(under_way, default=0)}"
    )
    print_shares(f"the {mode} burst", shares)
    return {
        "first completion s": first_s,
        "p50 s": p50_s,
        "p95 s": p95_s,
        "drain s": drain_s,
        "p50 / drain": p50_s / drain_s,
        "videos/min": 60 * videos / drain_s,
        "failed": videos - len(done),
        "under way, median": statistics.median(under_way or [0]),
        "worker CPU s/video": worker_cpu,
        "worker cores": shares[WORKER] / shares["wall s"],
        "rest-of-machine cores": shares["rest of the machine"] / shares["wall s"],
    }


class UploadApi:
    """``videofleet serve`` as a person's browser and R2 use it: upload URL, PUT, notification."""

    def __init__(self, client: httpx2.Client) -> None:
        self._client = client

    def upload(self, path: Path, filename: str) -> tuple[str, int]:
        """Upload ``path`` as ``filename`` through the API, then notify, as R2 would.

        Returns the task id and when the notification was sent (epoch ms), once the server has
        ingested it.
        """
        data = path.read_bytes()
        answer = self._client.post(
            "/api/upload-url",
            json={"filename": filename, "contentType": "video/mp4", "size": len(data)},
        )
        if answer.status_code != 201:
            raise SystemExit(f"upload API answered {answer.status_code}: {answer.text[:300]}")
        grant = answer.json()
        put = httpx2.put(
            grant["uploadUrl"], content=data, headers={"Content-Type": grant["contentType"]}
        )
        if put.status_code != 200:
            raise SystemExit(f"presigned PUT answered {put.status_code}: {put.text[:300]}")
        body = r2_notification(grant["key"], size=len(data), etag=put.headers["ETag"].strip('"'))
        notified_ms = now_ms()
        hook = self._client.post(
            "/webhook/events", json=body, headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
        )
        if hook.status_code != 202:
            raise SystemExit(f"webhook answered {hook.status_code}: {hook.text[:300]}")
        (message,) = hook.json()["messages"]
        (event,) = message["events"]
        return str(event["task_id"]), notified_ms


@contextmanager
def upload_api(env: dict[str, str]) -> Iterator[UploadApi]:
    """``videofleet serve`` in a child process, Access off (one local user), limits raised."""
    port = free_port()
    server_env = {
        **env,
        "ACCESS_DISABLED": "true",
        "WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        # The stream is one user at one IP: more upload URLs a minute than a person needs.
        "RATE_LIMIT_UPLOAD_URLS_PER_USER_PER_MINUTE": "100000",
        "RATE_LIMIT_UPLOAD_URLS_PER_IP_PER_MINUTE": "100000",
    }
    args = [*VIDEOFLEET, "serve", "--host", "127.0.0.1", "--port", str(port)]
    with ExitStack() as stack:
        localstack.spawn(stack, args, log=LOGDIR / "bench-serve.log", env=server_env)
        localstack.wait_listening(
            "127.0.0.1", port, what="videofleet serve", timeout_s=SERVER_START_S
        )
        client = stack.enter_context(httpx2.Client(base_url=f"http://127.0.0.1:{port}"))
        yield UploadApi(client)


def _task_ids(fleet: Fleet, prefix: str) -> list[str]:
    with fleet.engine.connect() as conn:
        query = sa.select(tasks.c.id).where(tasks.c.video_key.startswith(prefix))
        return list(conn.execute(query).scalars())


def backfill(
    fleet: Fleet, *, videos: int, uploads: int, interval_s: float, priorities: bool
) -> dict[str, float]:
    """A poller backfill of ``videos`` clips, and ``uploads`` upload-API videos arriving behind."""
    mode = "lanes" if priorities else "fifo"
    prefix = f"backfill-{mode}/"
    source = clip()
    fleet.upload_many(source, [f"{prefix}{i:04d}.mp4" for i in range(videos)])
    env = {**fleet.env, "QUEUE_PRIORITIES": str(priorities).lower()}
    sent: dict[str, int] = {}
    meter = _meter(fleet)
    with upload_api(env) as api:
        meter.start()
        started = now_ms()
        subprocess.run(
            [*VIDEOFLEET, "poll", "--once", "--prefix", prefix],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        listed_s = (now_ms() - started) / 1000
        backlog = _task_ids(fleet, prefix)
        if len(backlog) != videos:
            raise SystemExit(f"the poller published {len(backlog)} of {videos} chains")
        stream_started = time.monotonic()
        for i in range(uploads):
            time.sleep(max(0.0, stream_started + i * interval_s - time.monotonic()))
            if fleet.count_ended(backlog, prefix=prefix) == videos:
                break  # drained: a later upload would meet an empty queue
            task_id, notified_ms = api.upload(source, f"person-{mode}-{i:03d}.mp4")
            sent[task_id] = notified_ms
        if not sent:
            raise SystemExit("the backfill drained before the first upload: raise --backfill")
        rows, _ = fleet.wait_many(list(sent), timeout_s=60 + 2 * videos)
        backlog_rows, _ = fleet.wait_many(backlog, timeout_s=60 + 2 * videos, prefix=prefix)
    shares = meter.stop()
    drained_ms = max(r.updated_at for r in backlog_rows.values())
    late = [t for t in sent if rows[t].updated_at > drained_ms]
    failed = [r.id for r in [*rows.values(), *backlog_rows.values()] if r.status != "completed"]
    lat = sorted(rows[t].updated_at - sent[t] for t in sent)
    p50_s, p95_s = quantiles_s(lat) if len(lat) > 1 else (lat[0] / 1000, lat[0] / 1000)
    drain_s = (drained_ms - started) / 1000
    print(
        f"\n## Backfill, {mode}: the poller lists {videos} clips; {len(sent)} videos come"
        f" through the upload API, one every {interval_s:g} s, while it drains"
    )
    print(
        f"  poller published the backfill in {listed_s:.1f} s; it drained after {drain_s:.1f} s"
        f" ({60 * videos / drain_s:.0f} videos/min)"
    )
    print(f"  upload-API videos, notification -> completed: p50 {p50_s:.1f} s, p95 {p95_s:.1f} s,")
    print(f"  max {lat[-1] / 1000:.1f} s; {len(late)} of {len(sent)} completed after the backfill")
    worker_cpu = shares[WORKER] / (videos + len(sent))
    print(f"  failed: {len(failed)}; worker CPU per video {worker_cpu:.3f} s")
    print_shares(f"the {mode} backfill", shares)
    return {
        "uploads": len(sent),
        "upload p50 s": p50_s,
        "upload p95 s": p95_s,
        "uploads after backfill": len(late),
        "backfill drain s": drain_s,
        "backfill videos/min": 60 * videos / drain_s,
        "failed": len(failed),
    }


def burst_targets(fifo: dict[str, float], lanes: dict[str, float]) -> list[Target]:
    """The burst's latency targets, measured with lanes on (FIFO is the baseline beside them).

    Its throughput target compares today's code with the code before issue 12
    (``bench.baseline``): lanes reorder the same work, they cannot make more of it.
    """
    return [
        Target(
            f"time to first completion < {FIRST_COMPLETION_TARGET_S:.0f} s",
            f"{lanes['first completion s']:.2f} s (FIFO {fifo['first completion s']:.2f} s)",
            lanes["first completion s"] < FIRST_COMPLETION_TARGET_S,
        ),
        Target(
            f"p50 notification -> completed <= {P50_OF_DRAIN_TARGET}x drain time",
            f"{lanes['p50 / drain']:.2f}x (FIFO {fifo['p50 / drain']:.2f}x)",
            lanes["p50 / drain"] <= P50_OF_DRAIN_TARGET,
        ),
    ]


def backfill_targets(fifo: dict[str, float] | None, lanes: dict[str, float]) -> list[Target]:
    """Upload-API videos during a backfill: p50 under the target with lanes on."""
    baseline = f" (FIFO {fifo['upload p50 s']:.1f} s)" if fifo else ""
    return [
        Target(
            f"upload-API videos during a backfill: p50 < {UPLOAD_P50_TARGET_S:.0f} s",
            f"{lanes['upload p50 s']:.1f} s, p95 {lanes['upload p95 s']:.1f} s{baseline}",
            lanes["upload p50 s"] < UPLOAD_P50_TARGET_S,
        )
    ]
