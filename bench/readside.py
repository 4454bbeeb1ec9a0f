"""The read side: what a crowd of pollers costs the database, and what a viewer downloads.

Ten ready videos are put in place as the worker leaves them (rows in PostgreSQL, thumbnails,
sprite and WebVTT map in moto's S3 server, written by ``workers.storage``), then, in one run:

- **status API**: 100 clients poll the 10 videos as fast as they are answered, conditionally
  (``If-None-Match``, as the page does), for ``--seconds`` each, against the producer's app
  under uvicorn, without and then with the micro-cache. Requests/s come from the clients (a
  separate process); database statements/s from the app's engine.
- **page bytes**: headless Chromium shows the page of one ready video and reloads it every
  ``--reload-every-s`` for ``--page-seconds``; Chromium's network log (DevTools protocol) sums
  the bytes received, by kind. "before" is the server as it was before stable links (URLs
  signed at each call, no micro-cache: ``STATUS_URL_WINDOW_S=0 STATUS_CACHE_ENABLED=false``);
  "after" is the defaults.

Run: ``python -m bench.readside`` (see bench/README.md, "Read side").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import redis
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import media  # noqa: E402
from bench import storyboard as storyboard_bench  # noqa: E402
from bench.ingest import DEFAULT_DATABASE_URL, drop_tables, prepare_database  # noqa: E402
from producer.dev.browser import NetworkLog, chromium  # noqa: E402
from producer.dev.devserver import serve  # noqa: E402
from producer.dev.localstack import S3Server, free_port  # noqa: E402
from producer.uploads import cors  # noqa: E402
from producer.web.access import DEVELOPMENT_USER  # noqa: E402
from schema import derived_keys  # noqa: E402
from schema.db import make_engine  # noqa: E402
from schema.settings import Settings  # noqa: E402
from schema.storage import make_s3_client  # noqa: E402
from schema.tables import tasks, videos  # noqa: E402
from workers import storage  # noqa: E402
from workers.media import storyboard as storyboard_files  # noqa: E402

BUCKET = "bench-readside"
THUMBNAILS = 5
WARMUP_S = 1.0


@dataclass(frozen=True)
class ApiResult:
    mode: str
    requests: int
    not_modified: int
    statements: int
    seconds: float

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds

    @property
    def statements_per_s(self) -> float:
        return self.statements / self.seconds


@dataclass(frozen=True)
class PageResult:
    mode: str
    views: int
    status_bytes: int
    image_bytes: int
    images_downloaded: int
    page_bytes: int

    @property
    def total(self) -> int:
        return self.status_bytes + self.image_bytes + self.page_bytes


def derived_files() -> tuple[list[bytes], bytes, str]:
    """Thumbnails, sprite and map of bench.storyboard's 2-minute video (made once)."""
    out = media.MEDIA_DIR / "storyboard"
    if not (out / storyboard_files.VTT_NAME).exists():
        storyboard_bench.main()
    thumbs = [(out / f"{i:03d}.jpg").read_bytes() for i in range(THUMBNAILS)]
    sprite = (out / storyboard_files.SPRITE_NAME).read_bytes()
    return thumbs, sprite, (out / storyboard_files.VTT_NAME).read_text()


def put_ready_videos(settings: Settings, count: int) -> list[str]:
    """``count`` ready videos of DEVELOPMENT_USER, as the worker leaves them; their ids."""
    thumbs, sprite, vtt = derived_files()
    s3 = make_s3_client(settings)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=BUCKET)
    engine = make_engine(settings.database_url)
    now = int(time.time() * 1000)
    ids = []
    prefix = settings.thumbnails_prefix
    for n in range(count):
        video_id, key = f"bench-video-{n}", f"uploads/bench-{n}.mp4"
        objects = {
            derived_keys.thumbnail_key(prefix, key, i, data): (data, storage.THUMBNAIL_CONTENT_TYPE)
            for i, data in enumerate(thumbs)
        }
        sprite_key = derived_keys.storyboard_key(prefix, key, storyboard_files.SPRITE_NAME, sprite)
        vtt_key = derived_keys.storyboard_key(prefix, key, storyboard_files.VTT_NAME, vtt.encode())
        keys = list(objects)
        objects[sprite_key] = (sprite, storage.THUMBNAIL_CONTENT_TYPE)
        objects[vtt_key] = (vtt.encode(), storyboard_files.VTT_CONTENT_TYPE)
        storage.upload_many(s3, BUCKET, objects)
        metadata = {
            "probe": {"duration_s": 120.0, "width": 640, "height": 360},
            "thumbnails": {"keys": keys, "times_s": [12.0 * (i + 1) for i in range(THUMBNAILS)]},
            "storyboard": {"sprite_key": sprite_key, "vtt_key": vtt_key, "tiles": 30},
        }
        with engine.begin() as conn:
            conn.execute(
                sa.insert(videos).values(
                    id=video_id, r2_key=key, filename=f"bench-{n}.mp4", content_type="video/mp4",
                    size_bytes=1_000_000, status="ready", created_at=now, updated_at=now,
                    owner=DEVELOPMENT_USER,
                )
            )  # fmt: skip
            conn.execute(
                sa.insert(tasks).values(
                    id=f"bench-task-{n}", video_key=key, status="completed", created_at=now,
                    updated_at=now, metadata=json.dumps(metadata), bucket=BUCKET,
                    video_id=video_id, step="update",
                )
            )  # fmt: skip
        ids.append(video_id)
    engine.dispose()
    s3.close()
    return ids


class StatementCounter:
    """SQL statements run by any engine of this process (only the app's runs meanwhile)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __enter__(self) -> StatementCounter:
        sa.event.listen(sa.Engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_: object) -> None:
        sa.event.remove(sa.Engine, "before_cursor_execute", self._seen)

    def _seen(self, *_: Any) -> None:
        with self._lock:
            self.count += 1


def bench_api(
    settings: Settings, ids: list[str], *, clients: int, seconds: float
) -> list[ApiResult]:
    """Requests/s and statements/s without and with the micro-cache, the videos in flight.

    While a video is processing its answer stays fresh ``STATUS_FRESH_S``; once ready,
    ``STATUS_FINAL_FRESH_S`` (longer than a run): polling in-flight videos is the costly case.
    """
    set_status(settings, ids, video="processing", task="running")
    results = []
    for mode, cache in (("no micro-cache", False), ("micro-cache", True)):
        port = free_port()
        app_settings = settings.model_copy(update={"status_cache_enabled": cache})
        with serve(app_settings, port) as base_url, StatementCounter() as counter:
            load = [sys.executable, "-m", "bench.readside", "--load", base_url,
                    "--clients", str(clients), "--seconds", str(seconds), *ids]  # fmt: skip
            proc = subprocess.Popen(load, stdout=subprocess.PIPE, cwd=ROOT, text=True)
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "go"  # the clients are warm: count now
            before = counter.count
            answer = json.loads(proc.stdout.readline())
            statements = counter.count - before
            proc.wait(timeout=60)
        results.append(
            ApiResult(mode, answer["requests"], answer["not_modified"], statements, seconds)
        )
    set_status(settings, ids, video="ready", task="completed")
    return results


def set_status(settings: Settings, ids: list[str], *, video: str, task: str) -> None:
    """Play the worker: move the videos and their tasks to ``video`` and ``task``."""
    engine = make_engine(settings.database_url)
    with engine.begin() as conn:
        conn.execute(sa.update(videos).where(videos.c.id.in_(ids)).values(status=video))
        conn.execute(sa.update(tasks).where(tasks.c.video_id.in_(ids)).values(status=task))
    engine.dispose()


async def _poll_as_fast_as_answered(base_url: str, ids: list[str], clients: int, s: float) -> None:
    """The load generator: ``clients`` pollers, client i on video i % len(ids), conditional."""
    counts = {"requests": 0, "not_modified": 0, "errors": 0}
    limits = httpx2.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx2.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:

        async def poller(i: int, until: float, count: bool) -> None:
            etag = ""
            path = f"/api/videos/{ids[i % len(ids)]}"
            while time.monotonic() < until:
                response = await client.get(path, headers={"If-None-Match": etag} if etag else {})
                etag = response.headers.get("etag", etag)
                if count:
                    counts["requests"] += 1
                    counts["not_modified"] += response.status_code == 304
                    counts["errors"] += response.status_code >= 400

        warm_until = time.monotonic() + WARMUP_S
        await asyncio.gather(*(poller(i, warm_until, False) for i in range(clients)))
        print("go", flush=True)
        until = time.monotonic() + s
        await asyncio.gather(*(poller(i, until, True) for i in range(clients)))
        print(json.dumps(counts), flush=True)


def bench_page(
    settings: Settings, video_id: str, *, seconds: float, reload_every_s: float
) -> list[PageResult]:
    """Bytes the page receives over ``seconds`` of looking at one ready video."""
    results = []
    before = {"status_url_window_s": 0, "status_cache_enabled": False}
    for mode, overrides in (("before", before), ("after", {})):
        port = free_port()
        origin = f"http://127.0.0.1:{port}"
        page_settings = settings.model_copy(
            update={**overrides, "upload_allowed_origins": [origin]}
        )
        cors.apply(page_settings, bucket=BUCKET)
        with (
            serve(page_settings, port) as base_url,
            tempfile.TemporaryDirectory() as profile,
            chromium(Path(profile)) as browser,
        ):
            page = browser.new_page()
            network = NetworkLog.attach(page)
            views = 0
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                if views == 0:
                    page.goto(f"{base_url}/upload?video={video_id}")
                else:
                    page.reload()
                page.wait_for_selector("#status[data-state=ready]")
                page.wait_for_function(
                    "document.querySelectorAll('#thumbnails img').length > 0 && "
                    "[...document.querySelectorAll('#thumbnails img')].every(i => i.complete)"
                )
                views += 1
                page.wait_for_timeout(reload_every_s * 1000)
            s3 = settings.s3_endpoint_url
            images = network.since(containing=s3)
            results.append(
                PageResult(
                    mode,
                    views,
                    status_bytes=network.bytes_received(containing="/api/videos/"),
                    image_bytes=network.bytes_received(containing=s3),
                    images_downloaded=sum(f.downloaded for f in images),
                    page_bytes=network.bytes_received(containing=base_url)
                    - network.bytes_received(containing="/api/videos/"),
                )
            )
    return results


def report(api: list[ApiResult], page: list[PageResult], clients: int, videos: int) -> None:
    print(f"\n## status API: {clients} clients polling {videos} videos (conditional GETs)")
    print(f"{'mode':<16} {'requests/s':>11} {'304 share':>10} {'DB statements/s':>16}")
    for r in api:
        share = r.not_modified / max(r.requests, 1)
        print(f"{r.mode:<16} {r.requests_per_s:>11.0f} {share:>10.0%} {r.statements_per_s:>16.1f}")
    plain, cached = api
    print(
        f"ratio micro-cache / none: requests/s x{cached.requests_per_s / plain.requests_per_s:.1f},"
        f" DB statements/s x{cached.statements_per_s / plain.statements_per_s:.4f}"
        f" (statements per request {plain.statements / max(plain.requests, 1):.2f}"
        f" -> {cached.statements / max(cached.requests, 1):.4f})"
    )
    print("\n## upload page on one ready video, reloaded periodically (Chromium network log)")
    print(f"{'mode':<8} {'views':>5} {'images':>7} {'image B':>9} {'status B':>9} {'page B':>9} "
          f"{'total B':>9}")  # fmt: skip
    for p in page:
        print(f"{p.mode:<8} {p.views:>5} {p.images_downloaded:>7} {p.image_bytes:>9} "
              f"{p.status_bytes:>9} {p.page_bytes:>9} {p.total:>9}")  # fmt: skip
    old, new = page
    print(
        f"ratio after / before: image bytes x{new.image_bytes / max(old.image_bytes, 1):.3f},"
        f" status bytes x{new.status_bytes / max(old.status_bytes, 1):.2f},"
        f" total x{new.total / max(old.total, 1):.2f}"
    )


@contextlib.contextmanager
def environment(database_url: str, redis_db: int) -> Iterator[Settings]:
    """moto, a fresh database and this bench's Redis keys; the settings to reach them."""
    prepare_database(database_url)
    server = S3Server()
    server.start()
    redis_url = f"redis://127.0.0.1:6379/{redis_db}"
    keys = redis.Redis.from_url(redis_url)
    for key in keys.scan_iter("videofleet-status:*"):
        keys.delete(key)
    try:
        yield Settings(
            database_url=database_url,
            s3_endpoint_url=server.url,
            s3_bucket=BUCKET,
            access_disabled=True,
            rate_limit_redis_url=redis_url,
            rate_limit_key_prefix="bench-readside",
            log_level="WARNING",
        )
    finally:
        server.stop()
        engine = make_engine(database_url)
        drop_tables(engine)
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--videos", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0, help="per status API mode")
    parser.add_argument("--page-seconds", type=float, default=60.0)
    parser.add_argument("--reload-every-s", type=float, default=5.0)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL + "_readside"),
    )
    parser.add_argument("--redis-db", type=int, default=int(os.environ.get("BENCH_REDIS_DB", "13")))
    parser.add_argument("--load", metavar="BASE_URL", help=argparse.SUPPRESS)
    parser.add_argument("ids", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's access log
    if args.load:
        asyncio.run(_poll_as_fast_as_answered(args.load, args.ids, args.clients, args.seconds))
        return
    with environment(args.database_url, args.redis_db) as settings:
        ids = put_ready_videos(settings, args.videos)
        api = bench_api(settings, ids, clients=args.clients, seconds=args.seconds)
        page = bench_page(
            settings, ids[0], seconds=args.page_seconds, reload_every_s=args.reload_every_s
        )
    report(api, page, args.clients, args.videos)


if __name__ == "__main__":
    main()
