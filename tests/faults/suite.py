"""The faults of issue 10, each run against a fresh private fleet, and the table of what happened.

Each fault uploads ``videos`` generated clips, delivers their notifications, breaks something
once a quarter of them ended (or while delivering, for the producer), and waits until every row
ended and the broker holds no message, or ``drain_timeout_s`` passed. A row is *stuck* if it has
not ended by then, *lost* if the upload has no row at all; every clip is a valid video, so every
``failed`` row is a false failure. ``retry_count`` summed over the rows must equal the ``will
retry`` lines the workers logged.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from producer.dev import samples
from producer.events.ingest import CLAIM_LEASE_S
from tests.faults.fleet import (
    THUMBNAIL_COUNT,
    Fleet,
    Services,
    fleet,
    thumbnail_sets,
    upload,
)

FAULT_AT_SHARE = 0.25
POLL_S = 0.2


@dataclass(frozen=True, slots=True)
class Report:
    """One line of the table."""

    fault: str
    videos: int
    completed: int
    failed: int
    stuck: int
    lost: int
    duplicate_thumbnail_sets: int
    retry_count: int
    retries_logged: int
    drain_s: float
    recovered: int = 0
    errors: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        """Nothing lost, stuck, falsely failed or duplicated, and the retry count exact."""
        return (
            self.completed == self.videos
            and not (self.failed or self.stuck or self.lost or self.duplicate_thumbnail_sets)
            and self.retry_count == self.retries_logged
        )


@dataclass(frozen=True, slots=True)
class Fault:
    """A named fault: how to break the fleet, and the broker it needs."""

    name: str
    inject: Callable[[Services, Fleet], None]
    persistent_broker: bool = True
    during_delivery: bool = False
    deliveries: int = 1


def redis_down_15s(found: Services, _: Fleet) -> None:
    """Redis (AOF on) shut down for 15 s."""
    assert found.broker is not None
    found.broker.stop()
    time.sleep(15)
    found.broker.start()


def redis_restart_empty(found: Services, _: Fleet) -> None:
    """Redis without persistence restarted: every queued and unacked message is gone."""
    assert found.broker is not None
    found.broker.stop()
    found.broker.start()


def postgres_down_10s(found: Services, _: Fleet) -> None:
    """PostgreSQL stopped for 10 s."""
    found.postgres.stop()
    time.sleep(10)
    found.postgres.start()


def s3_slowdown_30pct(found: Services, _: Fleet) -> None:
    """From now on, 30% of storage requests answered 503 SlowDown (set before delivery)."""
    found.proxy.fraction = 0.3


def worker_main_sigkill(_: Services, running: Fleet) -> None:
    """SIGKILL the main process of the worker that is running a step right now."""
    running.kill_main(0)


def pool_child_sigkills(_: Services, running: Fleet) -> None:
    """30 SIGKILLs of pool processes, one every 2 s, while the fleet works."""
    rng = random.Random(30)
    for _kill in range(30):
        children = running.pool_children()
        if children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(rng.choice(children), signal.SIGKILL)
        time.sleep(2)


def no_fault(_: Services, __: Fleet) -> None:
    """Nothing is broken (the duplicates are in the deliveries)."""


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault("redis down 15 s (AOF)", redis_down_15s),
        Fault("redis restart, no persistence", redis_restart_empty, persistent_broker=False),
        Fault("postgresql stopped 10 s", postgres_down_10s),
        Fault("s3 503 to 30% of requests", s3_slowdown_30pct, during_delivery=True),
        Fault("worker main process SIGKILL", worker_main_sigkill),
        Fault("producer killed between commit and publish", no_fault, during_delivery=True),
        Fault("30 SIGKILLs of pool children", pool_child_sigkills),
        Fault("each notification delivered 5 times", no_fault, deliveries=5),
    )
}
PRODUCER_KILL = "producer killed between commit and publish"


def make_clips(directory: Path) -> list[Path]:
    """Four 3-second H.264 clips: index at the front or the end, two sizes."""
    directory.mkdir(parents=True, exist_ok=True)
    return [
        samples.make_video(
            directory / f"clip-{size}-{'front' if front else 'end'}.mp4",
            seconds=3,
            size=size,
            rate=25,
            faststart=front,
        )
        for size in ("320x240", "426x240")
        for front in (True, False)
    ]


def run_fault(
    found: Services, fault: Fault, clips: list[Path], *, videos: int, drain_timeout_s: float
) -> Report:
    """Run one fault against a fresh fleet and count what happened."""
    prefix = fault.name.split()[0] + f"-{int(time.time())}"
    bodies = upload(found, clips, prefix, videos)
    found.proxy.fraction = 0.0
    with fleet(found, prefix, persistent_broker=fault.persistent_broker) as running:
        started = time.monotonic()
        if fault.name == PRODUCER_KILL:
            _deliver_through_killed_producers(running, bodies)
        else:
            if fault.during_delivery:
                fault.inject(found, running)
            for _ in range(fault.deliveries):
                threads = [
                    threading.Thread(target=running.deliver, args=(bodies[i : i + 25],))
                    for i in range(0, len(bodies), 25)
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
            if not fault.during_delivery:
                _wait_until(lambda: running.ended() >= videos * FAULT_AT_SHARE, timeout_s=300)
                fault.inject(found, running)
        # Drained: every row ended and no message left in the broker (a dead worker's unacked
        # message counts until the recovery loop gave it back and it ran).
        deadline = started + drain_timeout_s
        while time.monotonic() < deadline and not (
            running.ended() >= videos and running.broker_idle()
        ):
            time.sleep(POLL_S)
        drain_s = time.monotonic() - started
        found.proxy.fraction = 0.0
        rows = running.rows()
        retries_logged = running.retries_logged()
        recovered = running.recovered()
    sets = thumbnail_sets(found, prefix)
    statuses = [r.status for r in rows]
    return Report(
        fault=fault.name,
        videos=videos,
        completed=statuses.count("completed"),
        failed=statuses.count("failed"),
        stuck=sum(1 for s in statuses if s not in ("completed", "failed")),
        lost=videos - len(rows),
        duplicate_thumbnail_sets=sum(1 for n in sets.values() if n > THUMBNAIL_COUNT),
        retry_count=sum(r.retry_count or 0 for r in rows),
        retries_logged=retries_logged,
        drain_s=drain_s,
        recovered=recovered,
        errors=tuple(sorted({r.error_message for r in rows if r.status == "failed"})),
    )


def _deliver_through_killed_producers(running: Fleet, bodies: list[dict[str, Any]]) -> None:
    """Batches of 20 through ``videofleet ingest`` processes SIGKILLed between commit and publish.

    Each producer's broker is a socket that accepts and never answers, so its publish hangs
    after the commit; it is killed 25-35 ms after its rows appear. Then every notification is
    delivered again after the claim lease, as a queue redelivers unacknowledged messages.
    """
    rng = random.Random(35)
    with socket.create_server(("127.0.0.1", 0)) as blackhole:
        env = {**running.env, "BROKER_URL": f"redis://127.0.0.1:{blackhole.getsockname()[1]}/0"}
        for i in range(0, len(bodies), 20):
            batch = bodies[i : i + 20]
            producer = subprocess.Popen(
                [sys.executable, "-m", "producer", "ingest", "-"],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            assert producer.stdin is not None
            producer.stdin.write(json.dumps(batch).encode())
            producer.stdin.close()
            keys = {b["object"]["key"] for b in batch}
            _wait_until(lambda keys=keys: _rows_for(running, keys) == len(keys), timeout_s=60)
            time.sleep(rng.uniform(0.025, 0.035))
            producer.send_signal(signal.SIGKILL)
            producer.wait()
    time.sleep(CLAIM_LEASE_S + 1)
    running.deliver(bodies)


def _rows_for(running: Fleet, keys: set[str]) -> int:
    return sum(1 for r in running.rows() if r.video_key in keys and r.workflow_id)


def _wait_until(check: Callable[[], bool], *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the fault suite waited too long")
        time.sleep(POLL_S)


HEADER = (
    "fault",
    "videos",
    "completed",
    "failed",
    "stuck",
    "lost",
    "dup thumbnail sets",
    "retry_count / retries logged",
    "drain s",
    "recovered",
)


def table(reports: list[Report]) -> str:
    """The reports as a Markdown table."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + " --- |" * len(HEADER)]
    for r in reports:
        cells = (
            r.fault,
            r.videos,
            r.completed,
            r.failed,
            r.stuck,
            r.lost,
            r.duplicate_thumbnail_sets,
            f"{r.retry_count} / {r.retries_logged}",
            f"{r.drain_s:.0f}",
            r.recovered,
        )
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    errors = [f"- {r.fault}: {e}" for r in reports for e in r.errors]
    return "\n".join(lines + (["", "Failures:", *errors] if errors else []))
