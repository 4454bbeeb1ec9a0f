"""How much one /metrics scrape costs as the task table grows.

Fills a scratch PostgreSQL database with N task rows (a realistic mix: mostly completed with
timings, some failed with an error class, some retried, a few pending) and times one full
scrape (``producer.ops.metrics.render``: four queries and a Redis pipeline) against the bare
``SELECT status, count(*) ... GROUP BY status`` it contains, side by side in the same run.

    BENCH_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/vf_bench \
    BENCH_REDIS_URL=redis://127.0.0.1:6379/8 PYTHONPATH=. .venv/bin/python bench/metrics_scrape.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid

import sqlalchemy as sa

from producer.ops.metrics import render
from schema.db import make_engine
from schema.lifecycle import now_ms
from schema.migrate import upgrade
from schema.tables import metadata_obj, tasks

REPEATS = 7
TIMINGS = {
    "validate-video": 0.4,
    "generate-thumbnails": 1.6,
    "update-database": 0.02,
    "total": 2.02,
}


def _rows(n: int) -> list[dict[str, object]]:
    now = now_ms()
    rows: list[dict[str, object]] = []
    for i in range(n):
        status, meta, retries = "completed", {"timings_s": TIMINGS}, 0
        if i % 20 == 0:
            status, meta = "failed", {"error_class": "NotAVideo"}
        elif i % 50 == 1:
            status, meta = "pending", {}
        if i % 10 == 2:
            retries, meta = 1, {**meta, "last_retry_class": "StorageUnavailable"}
        rows.append(
            {
                "id": str(uuid.uuid4()),
                "video_key": f"uploads/{i}.mp4",
                "status": status,
                "created_at": now - i * 1000,
                "updated_at": now - i * 100,
                "retry_count": retries,
                "step": "validate-video",
                "metadata": json.dumps(meta),
            }
        )
    return rows


def _median_s(fn: object) -> float:
    samples = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main(sizes: list[int]) -> None:
    engine = make_engine(os.environ["BENCH_POSTGRES_URL"])
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    print(f"{'rows':>8}  {'scrape ms':>10}  {'GROUP BY ms':>11}  {'ratio':>6}")
    for n in sizes:
        with engine.begin() as conn:
            metadata_obj.drop_all(conn)
            conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(tasks.insert(), _rows(n))
            conn.execute(sa.text("ANALYZE video_processing_tasks"))

        def group_by() -> None:
            with engine.connect() as conn:
                conn.execute(
                    sa.select(tasks.c.status, sa.func.count()).group_by(tasks.c.status)
                ).all()

        scrape = _median_s(lambda: render(engine, redis_url, window_s=3600))
        bare = _median_s(group_by)
        print(f"{n:>8}  {scrape * 1000:>10.1f}  {bare * 1000:>11.1f}  {scrape / bare:>6.1f}")
    engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        prog="python bench/metrics_scrape.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sizes", nargs="*", type=int, help="Task rows to time [10000 100000].")
    main(parser.parse_args().sizes or [10_000, 100_000])
