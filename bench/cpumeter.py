"""Where the machine's CPU went during a measurement: the fleet's parts and everyone else.

The fleet benches run on a shared machine. Throughput is bounded by the cores, so a videos/min
figure only reads right beside who used them: the fleet worker, the S3 endpoint, PostgreSQL's
backends for the bench's database, the broker, the bench process (the producer), and the rest
of the machine (other users' work, counted as the machine's busy time minus all of those).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import psutil
import sqlalchemy as sa

PRODUCER = "producer (bench, serve, poll)"


def process_cpu_s(pid: int, *, tree: bool = True) -> float:
    """CPU seconds (user + system, reaped children included) of a process, with its children."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)] if tree else [root]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def listening_pid(port: int) -> int | None:
    """The process listening on TCP ``port`` on this machine, if one is visible."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            return conn.pid
    return None


def postgres_backends_cpu_s(engine: sa.Engine) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend connected to ``engine``'s database, by pid."""
    if engine.dialect.name != "postgresql":
        return {}
    with engine.connect() as conn:
        pids = conn.execute(
            sa.text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        ).scalars()
        return {pid: process_cpu_s(pid, tree=False) for pid in pids}


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all cores), since boot."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


@dataclass
class CpuMeter:
    """CPU seconds per part between ``start()`` and ``stop()``; wall seconds beside them.

    ``trees`` names process trees (a worker and its pool). The bench process is counted alone
    (its live children are the fleet) with the children it reaped during the measurement: the
    producer's side, including a ``videofleet poll`` or ``serve`` child that ended inside it.
    """

    trees: dict[str, int]
    engine: sa.Engine

    def start(self) -> None:
        """Take the first reading."""
        self._wall = time.monotonic()
        self._load = os.getloadavg()[0]
        self._machine = machine_busy_s()
        self._parts = self._read()
        self._pg = postgres_backends_cpu_s(self.engine)

    def stop(self) -> dict[str, float]:
        """CPU seconds per part since ``start()``, the rest of the machine, wall time, load."""
        wall = time.monotonic() - self._wall
        busy = machine_busy_s() - self._machine
        parts = {k: v - self._parts[k] for k, v in self._read().items()}
        # A backend that connected during the run counts whole; one that left is lost (rare:
        # the workers keep pooled connections).
        pg = postgres_backends_cpu_s(self.engine)
        if pg:
            parts["PostgreSQL (bench database)"] = sum(
                cpu - self._pg.get(pid, 0.0) for pid, cpu in pg.items()
            )
        parts["rest of the machine"] = max(0.0, busy - sum(parts.values()))
        return {
            "wall s": wall,
            **parts,
            "load average before": self._load,
            "load average after": os.getloadavg()[0],
        }

    def _read(self) -> dict[str, float]:
        parts = {name: process_cpu_s(pid) for name, pid in self.trees.items()}
        parts[PRODUCER] = process_cpu_s(os.getpid(), tree=False)
        return parts


def print_shares(title: str, shares: dict[str, float]) -> None:
    """One line per part: CPU seconds and cores on average over the wall time."""
    wall = shares["wall s"]
    print(
        f"  CPU during {title} ({wall:.1f} s wall, {psutil.cpu_count()} cores; 1-minute load"
        f" average {shares['load average before']:.1f} before, {shares['load average after']:.1f}"
        " after):"
    )
    for name, cpu in shares.items():
        if name not in ("wall s", "load average before", "load average after"):
            print(f"    {name:<30} {cpu:7.1f} CPU-s  {cpu / wall:5.2f} cores")
