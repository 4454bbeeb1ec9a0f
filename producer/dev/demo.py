"""``videofleet demo``: the whole fleet on the embedded defaults, from upload to task row.

Starts what is missing (Redis, the local S3 endpoint, a Celery worker), uploads generated
samples through boto3, delivers the R2 notifications R2 would send to the producer, waits for
the chains and prints the task rows. Exits 0 only when every row ended as expected.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from producer.dev import localstack, samples
from producer.events.ingest import ingest
from producer.events.publish import ChainPublisher
from producer.events.sources.r2 import parse_r2
from producer.ops.report import TASK_COLUMNS, format_table, task_summary
from schema.db import make_engine
from schema.migrate import upgrade
from schema.settings import Settings
from schema.status import TaskStatus
from schema.storage import make_s3_client
from schema.tables import tasks

WAIT_TIMEOUT_S = 180.0
POLL_INTERVAL_S = 0.5


@dataclass(frozen=True, slots=True)
class Sample:
    """A file the demo uploads and the status its task must end in."""

    name: str
    path: Path
    expected: TaskStatus


def make_samples(folder: Path) -> list[Sample]:
    """Generate the demo's uploads: four real videos in three containers, and two that are not."""
    return [
        Sample("clip.mp4", samples.make_video(folder / "clip.mp4"), TaskStatus.COMPLETED),
        Sample(
            "portrait.mp4",
            samples.make_video(folder / "portrait.mp4", rotate_deg=90),
            TaskStatus.COMPLETED,
        ),
        Sample(
            "anamorphic.mkv",
            samples.make_video(folder / "anamorphic.mkv", size="240x240", sar="4:3"),
            TaskStatus.COMPLETED,
        ),
        Sample(
            "clip.webm",
            samples.make_video(folder / "clip.webm", seconds=2, codec="libvpx-vp9"),
            TaskStatus.COMPLETED,
        ),
        Sample(
            "shopping-list.mp4", samples.make_not_a_video(folder / "notes.mp4"), TaskStatus.FAILED
        ),
        Sample("empty.mp4", samples.make_empty(folder / "empty.mp4"), TaskStatus.FAILED),
    ]


def r2_notification(settings: Settings, *, key: str, size: int, etag: str) -> dict[str, Any]:
    """The body R2 writes to the Queue for a ``PutObject``, field for field."""
    return {
        "account": "0" * 32,
        "action": "PutObject",
        "bucket": settings.s3_bucket,
        "object": {"key": key, "size": size, "eTag": etag.strip('"')},
        "eventTime": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }


def upload(settings: Settings, sample: Sample, key: str) -> dict[str, Any]:
    """PUT the sample into the bucket and return the notification R2 would send for it."""
    s3 = make_s3_client(settings)
    body = sample.path.read_bytes()
    response = s3.put_object(Bucket=settings.s3_bucket, Key=key, Body=body)
    return r2_notification(settings, key=key, size=len(body), etag=response["ETag"])


def wait_for_rows(engine: Engine, task_ids: list[str], *, timeout_s: float) -> list[Any]:
    """Poll until every task is completed or failed, or the time is up; return the rows."""
    deadline = time.monotonic() + timeout_s
    ended = {TaskStatus.COMPLETED.value, TaskStatus.FAILED.value}
    while True:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(tasks).where(tasks.c.id.in_(task_ids))).all()
        if all(r.status in ended for r in rows) or time.monotonic() > deadline:
            return sorted(rows, key=lambda r: r.video_key)
        time.sleep(POLL_INTERVAL_S)


def run_demo(settings: Settings, *, workdir: Path, out: Any) -> bool:
    """Run the demo; True when every task ended as expected."""
    run_id = uuid.uuid4().hex[:8]
    logdir = workdir / "logs"
    started = time.monotonic()
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        localstack.ensure_redis(settings, stack, logdir=logdir)
        localstack.ensure_local_s3(settings, stack, logdir=logdir)
        engine = make_engine(settings.database_url)
        stack.callback(engine.dispose)
        upgrade(engine)
        localstack.ensure_bucket(settings)
        localstack.start_worker(stack, logdir=logdir, name=f"demo-{run_id}")
        demo_samples = make_samples(Path(tmp))
        keys = {s.name: f"uploads/demo-{run_id}/{s.name}" for s in demo_samples}
        bodies = [upload(settings, s, keys[s.name]) for s in demo_samples]
        print(
            f"Uploaded {len(bodies)} objects to s3://{settings.s3_bucket}/uploads/demo-{run_id}/",
            file=out,
        )
        with ChainPublisher(settings) as publisher:
            outcomes = ingest(engine, publisher, [parse_r2(b) for b in bodies])
        print(f"Delivered {len(outcomes)} R2 notifications; waiting for the worker...", file=out)
        rows = wait_for_rows(engine, [o.task_id for o in outcomes], timeout_s=WAIT_TIMEOUT_S)
    expected = {keys[s.name]: s.expected.value for s in demo_samples}
    print(format_table(TASK_COLUMNS, [task_summary(r) for r in rows]), file=out)
    wrong = [r.video_key for r in rows if r.status != expected[r.video_key]]
    print(
        f"\n{len(rows) - len(wrong)}/{len(expected)} tasks ended as expected "
        f"in {time.monotonic() - started:.1f} s (logs in {logdir}).",
        file=out,
    )
    return not wrong and len(rows) == len(expected)
