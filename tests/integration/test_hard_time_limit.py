"""A step killed by its hard time limit ends failed and leaves no process behind.

The soft limit normally stops a step first, and the supervisor kills ffmpeg then. The hard
limit is for a worker process that cannot react any more; SIGSTOP makes one, so that only
the pool's SIGKILL at the hard limit ends it. The worker here runs on its own Redis server and
SQLite file with a tiny STEP_TIME_LIMIT_S, so the session's fleets are not disturbed.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psutil
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from producer.dev import localstack
from producer.events.ingest import ingest
from producer.events.publish import ChainPublisher
from producer.events.sources.r2 import parse_r2
from producer.ops.requeue import resume_step
from producer.ops.taskquery import TaskView
from schema.settings import Settings
from schema.status import Step
from schema.storage import make_s3_client
from schema.tables import tasks
from tests.factories import r2_body
from tests.integration.conftest import TEST_TUNING, S3Server, _free_port, reset_database

pytestmark = pytest.mark.integration

BUCKET = "videofleet-hard-limit"
HARD_LIMIT_S = 5


def _ffmpeg_reading(key: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["name"] == "ffmpeg" and (key in cmdline or key.replace("/", "%2F") in cmdline):
            found.append(proc)
    return found


def test_step_killed_by_its_hard_time_limit_fails_and_leaves_no_process_behind(
    s3_server: S3Server, long_gop_mp4: Path, tmp_path: Path
) -> None:
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        pytest.fail("redis-server must be installed")
    redis_port = _free_port()
    env = {
        **os.environ,
        **TEST_TUNING,
        "STEP_SOFT_TIME_LIMIT_S": str(HARD_LIMIT_S - 1),
        "STEP_TIME_LIMIT_S": str(HARD_LIMIT_S),
        "DATABASE_URL": f"sqlite:///{tmp_path}/hard-limit.db",
        "BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
        "S3_ENDPOINT_URL": s3_server.url,
        "S3_BUCKET": BUCKET,
    }
    settings = Settings(
        **{k.lower(): v for k, v in env.items() if k.lower() in Settings.model_fields}
    )
    engine = reset_database(settings.database_url)
    s3 = make_s3_client(settings)
    s3.create_bucket(Bucket=BUCKET)
    key = "uploads/hard-limit.mp4"
    data = long_gop_mp4.read_bytes()
    etag = s3.put_object(Bucket=BUCKET, Key=key, Body=data)["ETag"].strip('"')
    with ExitStack() as stack:
        stack.callback(engine.dispose)
        localstack.spawn(
            stack,
            [
                redis_server,
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            log=tmp_path / "redis.log",
        )
        localstack.wait_listening("127.0.0.1", redis_port, what="redis-server")
        worker = localstack.start_worker(
            stack, logdir=tmp_path, name="hard-limit", concurrency=1, env=env
        )
        # given a worker whose thumbnail step is running ffmpeg on a long video
        with ChainPublisher(settings) as publisher:
            [outcome] = ingest(
                engine,
                publisher,
                [parse_r2(r2_body(bucket=BUCKET, key=key, size=len(data), etag=etag))],
            )
        deadline = time.monotonic() + 60
        while _row(engine, outcome.task_id).step != Step.THUMBNAILS.value:
            assert time.monotonic() < deadline, (tmp_path / "hard-limit.log").read_text()[-3000:]
            time.sleep(0.01)
        [child] = psutil.Process(worker.pid).children()  # the one prefork pool process
        # when that pool process stops responding, so only the hard limit can end the step
        child.send_signal(signal.SIGSTOP)
        descendants = child.children(recursive=True)
        started = time.monotonic()
        # then the pool kills it at the hard limit, and whatever it had started dies with it
        child.wait(timeout=HARD_LIMIT_S + 30)
        killed_after_s = time.monotonic() - started
        assert killed_after_s < HARD_LIMIT_S + 30
        gone, alive = psutil.wait_procs(descendants, timeout=10)
        assert alive == []
        assert _ffmpeg_reading(key) == []
        assert "Hard time limit (5s) exceeded" in (tmp_path / "hard-limit.log").read_text()
        assert worker.poll() is None, "the worker itself survives a hard time limit"
        print(f"pool process killed {killed_after_s:.1f} s after it stopped; {len(gone)} left none")
        # and the task ends failed in that step (Celery runs on_failure for a hard time limit),
        # where a requeue can resume it
        deadline = time.monotonic() + 30
        while (row := _row(engine, outcome.task_id)).status != "failed":
            assert time.monotonic() < deadline, f"task still {row.status}"
            time.sleep(0.2)
        assert row.step == Step.THUMBNAILS.value
        assert "TimeLimitExceeded" in row.error_message
        assert resume_step(TaskView.from_row(row)) is Step.THUMBNAILS


def _row(engine: Engine, task_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.select(tasks).where(tasks.c.id == task_id)).one()
