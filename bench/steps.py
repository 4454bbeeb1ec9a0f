"""Where a tiny video's orchestration goes: the steps in-process, each I/O call timed.

``python -m bench.steps`` runs the three steps as the Celery tasks call them, without a broker,
on the orchestration bench's 2-second clip against PostgreSQL and moto's S3 server, and times
every call the steps make to ``workers.records`` (the database) and ``workers.storage`` (the
PUTs), and the media work (probe, capture). It prints the medians and counts per video, and,
measured in the same run, one PUT against the same moto, five in a row and five in parallel:
the floor the thumbnails' uploads put under ``bench.fleet``'s orchestration figure.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from bench import media
from bench.cpumeter import process_cpu_s
from bench.fleetstack import LOGDIR, fresh_database, start_moto
from producer.dev import localstack
from schema.changes import ChangeMarks
from schema.lifecycle import now_ms
from schema.settings import Settings
from schema.status import TaskStatus
from schema.storage import make_s3_client
from schema.tables import tasks
from workers import records, steps, storage
from workers.context import Deps

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BUCKET = "bench-steps"
DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/videofleet_bench_steps"
TIMED = {
    records: ("begin_step", "save_validated", "save_step", "complete"),
    storage: ("upload_many",),
}
WARM_UP = 2


def _timed(calls: dict[str, list[float]], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            calls[name].append(1000 * (time.perf_counter() - started))

    return timed


def pending_task(engine: sa.engine.Engine, *, bucket: str, key: str, etag: str) -> str:
    """Insert the row ingest leaves for one object version: pending, naming its ETag."""
    task_id = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(
            sa.insert(tasks).values(
                id=task_id,
                video_key=key,
                bucket=bucket,
                etag=etag,
                status=TaskStatus.PENDING.value,
                created_at=now_ms(),
                updated_at=now_ms(),
            )
        )
    return task_id


def _median_ms(fn: Callable[[int], object], rounds: int) -> float:
    times = []
    for i in range(rounds):
        started = time.perf_counter()
        fn(i)
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def main() -> None:
    """Run the steps ``--videos`` times and print where their time went."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--videos", type=int, default=20)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    args = parser.parse_args()
    media.MEDIA_DIR.mkdir(exist_ok=True)
    LOGDIR.mkdir(exist_ok=True)
    calls: dict[str, list[float]] = defaultdict(list)
    upload_many = storage.upload_many  # the PUT comparison below is not the steps' call
    for module, names in TIMED.items():
        for name in names:
            setattr(module, name, _timed(calls, name, getattr(module, name)))
    with ExitStack() as stack:
        moto, endpoint = start_moto(stack, log=LOGDIR / "steps-moto.log")
        settings = Settings(
            database_url=args.database_url,
            s3_endpoint_url=endpoint,
            s3_bucket=BUCKET,
            status_cache_enabled=False,
        )
        engine = fresh_database(args.database_url)
        stack.callback(engine.dispose)
        localstack.ensure_bucket(settings)
        s3 = make_s3_client(settings)
        deps = Deps(settings, engine, s3, ChangeMarks(settings))
        data = media.tiny().read_bytes()
        step_ms: dict[str, list[float]] = defaultdict(list)
        media_ms: dict[str, list[float]] = defaultdict(list)
        for i in range(args.videos + WARM_UP):
            if i == WARM_UP:
                for timings in (calls, step_ms, media_ms):
                    timings.clear()
            key = f"steps/{i:03d}.mp4"
            etag = s3.put_object(Bucket=BUCKET, Key=key, Body=data)["ETag"].strip('"')
            task_id = pending_task(engine, bucket=BUCKET, key=key, etag=etag)
            for name, step in (
                ("validate", steps.validate),
                ("thumbnails", steps.thumbnails),
                ("update", steps.update),
            ):
                started = time.perf_counter()
                step(deps, task_id)
                step_ms[name].append(1000 * (time.perf_counter() - started))
            with engine.connect() as conn:
                meta = conn.execute(
                    sa.select(tasks.c.metadata).where(tasks.c.id == task_id)
                ).scalar_one()
            for name, seconds in meta.media_s.items():
                media_ms[name].append(1000 * seconds)
        payload = b"x" * 8000
        one = _median_ms(lambda i: s3.put_object(Bucket=BUCKET, Key=f"p/{i}", Body=payload), 20)
        in_a_row = _median_ms(
            lambda i: [
                s3.put_object(Bucket=BUCKET, Key=f"s/{i}/{j}", Body=payload) for j in range(5)
            ],
            20,
        )
        parallel = _median_ms(
            lambda i: upload_many(
                s3, BUCKET, {f"u/{i}/{j}": (payload, "image/jpeg") for j in range(5)}
            ),
            20,
        )
        split = _put_cpu_ms(s3, payload, moto_pid=moto.pid, puts=100)
    print(f"## The steps in-process, {args.videos} videos (2-second 320x240 clip), medians")
    for name, times in step_ms.items():
        print(f"  step {name:<28} {statistics.median(times):7.1f} ms")
    for name, times in media_ms.items():
        print(f"  media: {name:<26} {statistics.median(times):7.1f} ms")
    for name, times in calls.items():
        per_video = len(times) / args.videos
        print(f"  {name:<33} {statistics.median(times):7.1f} ms x {per_video:g} per video")
    print("## PUTs of 8 KB to this moto, medians of 20")
    print(f"  one PUT {one:.1f} ms; five in a row {in_a_row:.1f} ms;", end=" ")
    print(f"five in parallel (upload_many) {parallel:.1f} ms")
    wall, client, server = split
    print(
        f"  per PUT, 100 in a row: {wall:.1f} ms wall, of which CPU {client:.1f} ms in this"
        f" process (boto3: the worker's share, on R2 too) and {server:.1f} ms in moto (the"
        " stand-in's share: R2 spends it on Cloudflare's machines)"
    )


def _put_cpu_ms(s3: S3Client, payload: bytes, *, moto_pid: int, puts: int) -> tuple[float, ...]:
    """Wall, client CPU and moto CPU per PUT, over ``puts`` sequential PUTs."""
    wall, client, server = time.perf_counter(), time.process_time(), process_cpu_s(moto_pid)
    for i in range(puts):
        s3.put_object(Bucket=BUCKET, Key=f"cpu/{i}", Body=payload)
    return tuple(
        1000 * spent / puts
        for spent in (
            time.perf_counter() - wall,
            time.process_time() - client,
            process_cpu_s(moto_pid) - server,
        )
    )


if __name__ == "__main__":
    main()
