"""The bucket poller over moto's S3 server: restarts neither re-emit nor skip objects."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from producer.events.rules import EventRules
from producer.transports.poller import Poller
from schema.tables import poller_watermarks
from tests.integration.conftest import BUCKET, Fleet

pytestmark = pytest.mark.integration

PREFIX = "uploads/"
WORKTREE = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_watermarks(fleet: Fleet) -> Iterator[None]:
    """Each test starts and ends without poller progress (the fleet cleans tasks and bucket)."""
    with fleet.engine.begin() as conn:
        conn.execute(poller_watermarks.delete())
    yield
    with fleet.engine.begin() as conn:
        conn.execute(poller_watermarks.delete())


def make_poller(fleet: Fleet, *, lookback_s: int = 3600, page_size: int = 2) -> Poller:
    """A fresh poller, as after a process restart: all it knows is in the database."""
    return Poller(
        engine=fleet.engine,
        publisher=fleet.publisher,
        storage=fleet.s3,
        bucket=BUCKET,
        prefix=PREFIX,
        rules=EventRules.from_settings(fleet.settings),
        lookback_s=lookback_s,
        page_size=page_size,
    )


def put(fleet: Fleet, key: str, data: bytes) -> None:
    fleet.s3.put_object(Bucket=BUCKET, Key=key, Body=data)


def task_keys(fleet: Fleet) -> Counter[str]:
    return Counter(r.video_key for r in fleet.rows())


@pytest.mark.parametrize("lookback_s", [0, 3600])
def test_restarts_neither_re_emit_nor_skip_objects_uploaded_out_of_key_order(
    fleet: Fleet, not_a_video: Path, lookback_s: int
) -> None:
    data = not_a_video.read_bytes()
    # given five objects uploaded out of key order, and an object outside the prefix
    for name in ("m", "z", "c", "a", "x"):
        put(fleet, f"{PREFIX}{name}.mp4", data)
    put(fleet, "elsewhere/b.mp4", data)
    # when a poller is stopped after its first page (SIGTERM) and a new one takes over
    first = make_poller(fleet, lookback_s=lookback_s)
    first.stop()
    partial = first.scan()
    rest = make_poller(fleet, lookback_s=lookback_s).scan()
    # then the first page was emitted once, the rest once, by the poller that resumed
    assert (partial.pages, partial.emitted, partial.finished) == (1, 2, False)
    assert (rest.pages, rest.emitted, rest.finished) == (2, 3, True)
    assert partial.results + rest.results == Counter({"published": 5})
    assert task_keys(fleet) == Counter({f"{PREFIX}{n}.mp4": 1 for n in "acmxz"})
    # when a key that sorts before everything seen arrives, and an object is overwritten
    put(fleet, f"{PREFIX}0-late.mp4", data)
    put(fleet, f"{PREFIX}m.mp4", data + b"\n2nd version")
    later = make_poller(fleet, lookback_s=lookback_s).scan()
    # then exactly those two versions are emitted
    assert (later.emitted, later.results) == (2, Counter({"published": 2}))
    assert task_keys(fleet)[f"{PREFIX}0-late.mp4"] == 1
    assert task_keys(fleet)[f"{PREFIX}m.mp4"] == 2
    # and a further restart with nothing new emits nothing
    idle = make_poller(fleet, lookback_s=lookback_s).scan()
    assert (idle.listed, idle.emitted) == (6, 0)
    assert sum(task_keys(fleet).values()) == 7
    for row in fleet.rows():
        assert fleet.wait(row.id).status == "failed"  # not videos: the chain ran and said so


def test_objects_the_rules_ignore_are_reported_once(fleet: Fleet, not_a_video: Path) -> None:
    put(fleet, f"{PREFIX}notes.txt", b"not a video")
    put(fleet, f"{PREFIX}clip.mp4", not_a_video.read_bytes())
    report = make_poller(fleet).scan()
    assert report.results == Counter({"ignored": 1, "published": 1})
    assert make_poller(fleet).scan().emitted == 0


def _watermark(fleet: Fleet) -> sa.Row[tuple[object, ...]] | None:
    with fleet.engine.connect() as conn:
        return conn.execute(sa.select(poller_watermarks)).one_or_none()


def test_poll_command_exits_on_sigterm_with_its_progress_stored(
    fleet: Fleet, not_a_video: Path
) -> None:
    # given uploads and a running `videofleet poll`
    for i in range(3):
        put(fleet, f"{PREFIX}cli-{i}.mp4", not_a_video.read_bytes())
    env = {**fleet.env, "POLL_INTERVAL_S": "0.2", "INGEST_KEY_PREFIX": PREFIX}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from producer.cli import main; main()", "poll"],
        cwd=WORKTREE,
        env={k: v for k, v in env.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(WORKTREE)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while sum(task_keys(fleet).values()) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sum(task_keys(fleet).values()) == 3
        # when it receives SIGTERM
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # then it exits cleanly, having stored a finished scan
    assert proc.returncode == 0, err
    assert "SIGTERM: finishing the current page" in err
    state = _watermark(fleet)
    assert state is not None
    assert state.scan_cursor is None
    assert sorted(json.loads(state.seen)) == [f"{PREFIX}cli-{i}.mp4" for i in range(3)]
