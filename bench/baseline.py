"""Today's fleet beside the code issue 12 started from: one burst, the same harness, both trees.

Issue 12 asks for videos/min "at least 1.5x today's in the same harness": two versions of the
fleet, not two settings of one (FIFO beside lanes on today's code only reorders the same work;
see ``bench.burst``). So this bench extracts the baseline commit (``git archive``; by default
``BASELINE_REV``, the code the issue describes) into a directory and runs, one version at a
time, that version's own worker (``celery -A workers worker -c 2``: two processes) and its own
``videofleet serve``, each started from its own tree. Every round gets a fresh moto S3
server, the one Redis broker flushed, and the one PostgreSQL database emptied and then migrated
by that version's ``videofleet migrate``.

What the two share is the fleet's outside only: N uploads of the same 3-second clip, notified
to ``POST /webhook/events`` in Queue-consumer batches of 100 (``{"messages": [...]}``), and
the D1 table's columns (``video_key``, ``status``, ``updated_at``) read back. Rounds run
baseline, today, today, baseline (ABBA), so a steady drift in the machine's load falls on both
alike; videos/min is each version's clips over the sum of its drain times.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import redis
import sqlalchemy as sa
from celery import Celery

from bench.burst import BURST_BATCH, CLIP_S, Target, clip
from bench.cpumeter import CpuMeter, listening_pid, print_shares
from bench.fleetstack import (
    BUCKET,
    BURST_POLL_S,
    ENDED,
    LOGDIR,
    fleet_env,
    now_ms,
    start_moto,
    upload_many,
    wait_ready,
)
from bench.ingest import ensure_database
from producer.dev import localstack
from schema.db import make_engine
from schema.settings import Settings
from schema.storage import make_s3_client
from schema.tables import tasks

ROOT = Path(__file__).resolve().parent.parent
# The fleet as issue 12 found it, the last commit before this round of issues: validation in
# an ffprobe process reading open-ended ranges, FIFO chains, separate seeks for thumbnails and
# storyboard tiles, a status write and a storage call at every turn.
BASELINE_REV = "d9f7d67"
THROUGHPUT_TARGET = 1.5
ORDER = ("baseline", "today", "today", "baseline")
WEBHOOK_TOKEN = "bench-baseline-webhook-token"  # noqa: S105  (a local throwaway server)
WORKER = "fleet worker (2 processes)"
SERVE = "videofleet serve"
DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/videofleet_bench_baseline"


@dataclass(frozen=True)
class Drain:
    """One version's burst: when it was notified and what its rows say."""

    videos: int
    started_ms: int
    completed_ms: list[int]
    failed: int

    @property
    def drain_s(self) -> float:
        """First notification to the last completion."""
        return (max(self.completed_ms) - self.started_ms) / 1000

    @property
    def first_s(self) -> float:
        """First notification to the first completion."""
        return (min(self.completed_ms) - self.started_ms) / 1000


def extract(rev: str, dest: Path) -> Path:
    """The tree of commit ``rev`` of this repository, unpacked under ``dest``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev], check=False, capture_output=True
    )
    if archive.returncode != 0:
        raise SystemExit(
            f"cannot unpack the baseline {rev}: {archive.stderr.decode().strip()}"
            " (a shallow clone lacks it: git fetch --unshallow)"
        )
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def empty_database(url: str) -> None:
    """Nothing left of any version's schema: the next ``videofleet migrate`` starts from zero."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        Path(parsed.database or "").unlink(missing_ok=True)
        return
    ensure_database(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


def webhook_batches(notifications: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The notifications as a Queue consumer Worker forwards them, ``BURST_BATCH`` a request."""
    for start in range(0, len(notifications), BURST_BATCH):
        chunk = notifications[start : start + BURST_BATCH]
        yield {
            "messages": [
                {"id": f"bench-{start + i}", "attempts": 1, "body": body}
                for i, body in enumerate(chunk)
            ]
        }


def read_drain(engine: sa.Engine, prefix: str, *, videos: int, started_ms: int) -> Drain:
    """The ended rows under ``prefix`` (the D1 columns only: both versions have them)."""
    query = sa.select(tasks.c.status, tasks.c.updated_at).where(
        tasks.c.video_key.startswith(prefix), tasks.c.status.in_(ENDED)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    completed = [int(r.updated_at) for r in rows if r.status == "completed"]
    return Drain(videos, started_ms, completed, failed=len(rows) - len(completed))


class Stand:
    """What both versions are given: the broker, the database, the clip, the same settings."""

    def __init__(self, *, broker_url: str, database_url: str) -> None:
        self.broker_url = broker_url
        self.database_url = database_url
        self.clip = clip()

    def run(self, version: str, code: Path, *, videos: int, round_no: int) -> Drain:
        """``videos`` clips through ``code``'s own serve and worker.

        Each run gets a fresh moto (thousands of clips stay in its memory otherwise), an
        emptied broker and an emptied database migrated by ``code``'s ``videofleet migrate``.
        """
        redis.Redis.from_url(self.broker_url).flushdb()
        empty_database(self.database_url)
        prefix = f"{version}-{round_no}/"
        with ExitStack() as stack:
            moto, endpoint = start_moto(stack, log=LOGDIR / "baseline-moto.log")
            env = fleet_env(
                database_url=self.database_url,
                broker_url=self.broker_url,
                endpoint=endpoint,
                PYTHONPATH=str(code),
                WEBHOOK_TOKEN=WEBHOOK_TOKEN,
                ACCESS_DISABLED="true",
            )
            subprocess.run(
                [sys.executable, "-m", "producer", "migrate"],
                cwd=code, env=env, check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            settings = Settings(database_url=self.database_url, s3_endpoint_url=endpoint)
            s3 = make_s3_client(settings)
            s3.create_bucket(Bucket=BUCKET)
            keys = [f"{prefix}{i:04d}.mp4" for i in range(videos)]
            notifications = upload_many(s3, self.clip, keys)
            engine = make_engine(self.database_url)
            stack.callback(engine.dispose)
            worker = localstack.start_worker(
                stack, logdir=LOGDIR, name=f"baseline-{version}", env=env, cwd=code
            )
            client, serve = self._serve(stack, env, code, version)
            celery = Celery(broker=self.broker_url, set_as_current=False)
            stack.callback(celery.close)
            wait_ready(celery, f"baseline-{version}@")
            trees = {WORKER: worker.pid, SERVE: serve.pid, "moto (S3)": moto.pid}
            broker_port = urlsplit(self.broker_url).port or 6379
            if (redis_pid := listening_pid(broker_port)) is not None:
                trees["redis-server"] = redis_pid
            meter = CpuMeter(trees=trees, engine=engine)
            meter.start()
            started = now_ms()
            for batch in webhook_batches(notifications):
                answer = client.post("/webhook/events", json=batch)
                refused = [
                    m for m in answer.json().get("messages", []) if m["status"] != "accepted"
                ]
                if answer.status_code != 202 or refused:
                    raise SystemExit(f"{version}: webhook answered {answer.status_code} {refused}")
            drain = self._wait(engine, prefix, videos=videos, started_ms=started)
            shares = meter.stop()
        if not drain.completed_ms:
            raise SystemExit(f"{version}: no video completed; see {LOGDIR}")
        self._report(version, code, drain, shares)
        return drain

    def _serve(
        self, stack: ExitStack, env: dict[str, str], code: Path, version: str
    ) -> tuple[httpx2.Client, Any]:
        port = localstack.free_port()
        args = [sys.executable, "-m", "producer", "serve", "--host", "127.0.0.1"]
        serve = localstack.spawn(
            stack,
            [*args, "--port", str(port)],
            log=LOGDIR / f"baseline-{version}-serve.log",
            env=env,
            cwd=code,
        )
        localstack.wait_listening("127.0.0.1", port, what=f"{version}'s videofleet serve")
        client = httpx2.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
            timeout=60,
        )
        stack.enter_context(client)
        return client, serve

    def _wait(self, engine: sa.Engine, prefix: str, *, videos: int, started_ms: int) -> Drain:
        deadline = time.monotonic() + 60 + 2 * videos
        while time.monotonic() < deadline:
            drain = read_drain(engine, prefix, videos=videos, started_ms=started_ms)
            if len(drain.completed_ms) + drain.failed == videos:
                return drain
            time.sleep(BURST_POLL_S)
        raise SystemExit(f"{prefix}: the burst did not drain in time; see {LOGDIR}")

    def _report(self, version: str, code: Path, drain: Drain, shares: dict[str, float]) -> None:
        print(f"\n## {version} ({code}): {drain.videos} {CLIP_S}-second clips at once")
        print(
            f"  first completed after {drain.first_s:.2f} s; all after {drain.drain_s:.1f} s"
            f" ({60 * drain.videos / drain.drain_s:.0f} videos/min); failed {drain.failed}"
        )
        print(f"  fleet worker CPU per video {shares[WORKER] / drain.videos:.3f} s")
        print_shares(f"{version}'s burst", shares)


def compare(stand: Stand, trees: dict[str, Path], *, videos: int) -> Target:
    """The ABBA rounds, and the target: today's videos/min over the baseline's."""
    rounds = [
        (version, stand.run(version, trees[version], videos=videos, round_no=n))
        for n, version in enumerate(ORDER)
    ]
    per_min = {
        version: 60
        * sum(d.videos for v, d in rounds if v == version)
        / sum(d.drain_s for v, d in rounds if v == version)
        for version in trees
    }
    failed = sum(d.failed for _, d in rounds)
    ratio = per_min["today"] / per_min["baseline"]
    each = ", ".join(f"{v} {60 * d.videos / d.drain_s:.0f}" for v, d in rounds)
    return Target(
        f"{videos}-clip burst: videos/min >= {THROUGHPUT_TARGET}x the code before issue 12",
        f"{per_min['today']:.0f} vs {per_min['baseline']:.0f} = {ratio:.2f}x"
        f" (rounds: {each}); failed {failed}",
        ratio >= THROUGHPUT_TARGET and failed == 0,
    )


def versus(*, rev: str, videos: int, broker_url: str, database_url: str) -> Target:
    """Extract ``rev``, run the rounds, print and return the target."""
    print(f"\n# Baseline: {rev} beside today's tree ({ROOT}), {videos} clips a round", flush=True)
    with tempfile.TemporaryDirectory(prefix="videofleet-base-") as tmp:
        trees = {"baseline": extract(rev, Path(tmp)), "today": ROOT}
        stand = Stand(broker_url=broker_url, database_url=database_url)
        target = compare(stand, trees, videos=videos)
    print(f"  {target.line()}")
    return target


def main() -> None:
    """``python -m bench.baseline``: the throughput target alone."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rev", default=BASELINE_REV, help="the baseline commit")
    parser.add_argument("--videos", type=int, default=500, help="clips per round (4 rounds)")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/12", help="flushed")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="emptied")
    args = parser.parse_args()
    versus(
        rev=args.rev,
        videos=args.videos,
        broker_url=args.broker_url,
        database_url=args.database_url,
    )


if __name__ == "__main__":
    main()
