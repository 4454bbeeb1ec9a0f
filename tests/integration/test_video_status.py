"""The status API as something to poll: ETags and 304s, cache headers, stable links, micro-cache.

Real services: SQLite, moto's S3 server, Redis (the rate limits' database, which also holds the
micro-cache), a local JWKS. The worker's writes are played by updating the rows directly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from producer.web.status_cache import StatusCache, StatusEntry
from schema.changes import ChangeMarks
from schema.settings import Settings
from schema.tables import tasks, videos
from tests.integration import test_upload_api
from tests.integration.test_upload_api import Api
from tests.upload_env import bearer

pytestmark = pytest.mark.integration

# The upload API tests' app builder (a fresh SQLite database and bucket per test).
base_settings = test_upload_api.base_settings
make_api = test_upload_api.make_api

UPLOAD = {"filename": "clip.mp4", "contentType": "video/mp4", "size": 1000}


def _engine(api: Api) -> Engine:
    engine: Engine = api.client.app.state.resources.engine  # type: ignore[attr-defined]
    return engine


@contextmanager
def _counting_queries(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement the app's engine runs meanwhile."""
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2])

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)


def _finish(api: Api, video_id: str, *, status: str = "ready") -> None:
    """Play the worker: a completed task with thumbnails and a storyboard, the video ``status``."""
    now = int(time.time() * 1000)
    with _engine(api).begin() as conn:
        key = conn.execute(sa.select(videos.c.r2_key).where(videos.c.id == video_id)).scalar_one()
        prefix = f"thumbnails/{key}/"
        metadata = {
            "probe": {"duration_s": 10.0, "width": 320, "height": 240},
            "thumbnails": {
                "keys": [f"{prefix}{i:03d}.{i:016x}.jpg" for i in range(3)],
                "times_s": [1.0, 5.0, 9.0],
            },
            "storyboard": {
                "sprite_key": f"{prefix}storyboard.aaaa.jpg",
                "vtt_key": f"{prefix}storyboard.bbbb.vtt",
                "tiles": 5,
                "columns": 5,
                "rows": 1,
                "tile_width_px": 160,
                "tile_height_px": 120,
                "interval_s": 2.0,
            },
        }
        conn.execute(
            sa.insert(tasks).values(
                id=f"task-{video_id}",
                video_key=key,
                status="completed",
                created_at=now,
                updated_at=now,
                metadata=json.dumps(metadata),
                video_id=video_id,
                step="update",
            )
        )
        conn.execute(
            sa.update(videos).where(videos.c.id == video_id).values(status=status, updated_at=now)
        )


def test_a_second_poll_with_the_etag_gets_a_bodiless_304(make_api: Any) -> None:
    # given a video being uploaded
    api = make_api(status_cache_enabled=False)
    video_id = api.post("/api/upload-url", UPLOAD).json()["videoId"]
    # when its owner polls
    first = api.get(f"/api/videos/{video_id}")
    # then the answer says how to ask again
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "private, max-age=2"
    assert first.headers["vary"] == "Cf-Access-Jwt-Assertion"
    # and asking again with its ETag gets 304 and no body, with the same headers
    again = api.get(
        f"/api/videos/{video_id}", headers={**api.headers, "If-None-Match": f"W/{etag}, *x"}
    )
    assert again.status_code == 304
    assert again.content == b""
    assert (again.headers["etag"], again.headers["cache-control"]) == (etag, "private, max-age=2")
    # and a stale ETag gets the full answer
    stale = api.get(f"/api/videos/{video_id}", headers={**api.headers, "If-None-Match": '"x"'})
    assert stale.status_code == 200
    assert stale.content == first.content


def test_a_ready_video_has_stable_links_and_a_longer_max_age(make_api: Any) -> None:
    # given a video the fleet has finished
    api = make_api(status_cache_enabled=False)
    video_id = api.post("/api/upload-url", UPLOAD).json()["videoId"]
    processing = api.get(f"/api/videos/{video_id}")
    _finish(api, video_id)
    # when it is polled twice, a second apart, without the cache
    first = api.get(f"/api/videos/{video_id}")
    time.sleep(1.1)
    second = api.get(f"/api/videos/{video_id}")
    # then the row's change changed the ETag, and both answers are byte-identical
    assert first.headers["etag"] != processing.headers["etag"]
    assert first.content == second.content
    assert first.headers["etag"] == second.headers["etag"]
    assert first.headers["cache-control"] == "private, max-age=30"
    body = first.json()
    assert [t["atS"] for t in body["thumbnails"]] == [1.0, 5.0, 9.0]
    assert all("X-Amz-Date=" in t["url"] for t in body["thumbnails"])
    board = body["storyboard"]
    assert ".aaaa.jpg?" in board["spriteUrl"]
    assert ".bbbb.vtt?" in board["vttUrl"]
    assert (board["columns"], board["tileWidthPx"], board["intervalS"]) == (5, 160, 2.0)
    assert body["urlsExpireAt"] > (time.time() + api.settings.status_url_expiry_s) * 1000 - 2000


def test_with_a_public_base_thumbnails_are_plain_urls_and_the_video_stays_signed(
    make_api: Any,
) -> None:
    api = make_api(thumbnails_public_base_url="https://thumbs.example.com")
    video_id = api.post("/api/upload-url", UPLOAD).json()["videoId"]
    _finish(api, video_id)
    body = api.get(f"/api/videos/{video_id}").json()
    assert (
        body["thumbnails"][0]["url"] == f"https://thumbs.example.com/{body['thumbnails'][0]['key']}"
    )
    assert body["storyboard"]["vttUrl"].startswith("https://thumbs.example.com/thumbnails/")
    assert "X-Amz-Signature=" in body["videoUrl"]


def test_a_crowd_polling_a_video_costs_one_database_read_per_freshness_window(
    make_api: Any,
) -> None:
    # given a ready video, its status fresh for five seconds in the micro-cache (wide enough for
    # 50 polls on a loaded machine: the window's length is not what is measured)
    api = make_api(status_final_fresh_s=5)
    video_id = api.post("/api/upload-url", UPLOAD).json()["videoId"]
    _finish(api, video_id)
    with _counting_queries(_engine(api)) as queries:
        # when it is polled 50 times within the window
        answers = {api.get(f"/api/videos/{video_id}").content for _ in range(50)}
        reads_in_window = len(queries)
        # and again once the window has passed
        time.sleep(5.2)
        api.get(f"/api/videos/{video_id}")
        api.get(f"/api/videos/{video_id}")
    # then the window cost one read of the rows (two statements: video, latest task), all 50
    # answers were the same bytes, and the next window one more read
    assert reads_in_window == 2
    assert len(answers) == 1
    assert len(queries) == 4


def test_the_micro_cache_never_answers_another_user(make_api: Any) -> None:
    # given the owner's status in the micro-cache
    api = make_api()
    video_id = api.post("/api/upload-url", UPLOAD).json()["videoId"]
    _finish(api, video_id)
    assert api.get(f"/api/videos/{video_id}").status_code == 200
    # when another user asks for the same video
    other = bearer(api.key.token(sub="another-user"))
    with _counting_queries(_engine(api)) as queries:
        answer = api.get(f"/api/videos/{video_id}", headers=other)
    # then the cache is missed, the database says no, and the answer is 404
    assert answer.status_code == 404
    assert len(queries) >= 1
    # and the 404 was not cached: the owner still gets the video
    assert api.get(f"/api/videos/{video_id}").json()["videoId"] == video_id


def test_a_change_shows_once_the_freshness_window_passes(make_api: Any) -> None:
    # given an in-flight video in the micro-cache (fresh for STATUS_FRESH_S = 1 s)
    api = make_api(status_fresh_s=1)
    video_id = api.post("/api/upload-url", UPLOAD).json()["videoId"]
    assert api.get(f"/api/videos/{video_id}").json()["status"] == "uploading"
    # when the fleet finishes it
    _finish(api, video_id)
    # then pollers see it within the window (the one refresh may serve the old answer once)
    deadline = time.monotonic() + 1 + 2
    while api.get(f"/api/videos/{video_id}").json()["status"] != "ready":
        assert time.monotonic() < deadline, "the cache kept the old status past its window"
        time.sleep(0.1)


def test_a_change_mark_shows_the_change_at_the_next_poll(make_api: Any) -> None:
    # given an in-flight video whose answer the micro-cache would keep for most of a minute
    api = make_api(status_fresh_s=50)
    video_id = api.post("/api/upload-url", UPLOAD).json()["videoId"]
    first = api.get(f"/api/videos/{video_id}").json()
    assert first["status"] == "uploading"
    # when the fleet finishes it and marks the change, as a worker does after its transaction
    _finish(api, video_id)
    settings: Settings = api.client.app.state.resources.settings  # type: ignore[attr-defined]
    marks = ChangeMarks(settings)
    marks.mark(first["key"])
    marks.close()
    # then the very next poll shows it, well inside the window
    assert api.get(f"/api/videos/{video_id}").json()["status"] == "ready"


def test_the_pages_files_answer_a_current_etag_with_304(make_api: Any) -> None:
    api = make_api()
    for path in ("/upload", "/static/upload.js", "/static/upload.css"):
        first = api.client.get(path)
        assert first.status_code == 200
        again = api.client.get(path, headers={"If-None-Match": first.headers["etag"]})
        assert (again.status_code, again.content) == (304, b"")
        assert again.headers["cache-control"] == "no-cache"


def test_a_cached_answer_is_fresh_for_what_is_left_of_its_window(make_api: Any) -> None:
    # given a ready video's answer in the micro-cache (fresh 30 s)
    api = make_api()
    video_id = api.post("/api/upload-url", UPLOAD).json()["videoId"]
    _finish(api, video_id)
    assert api.get(f"/api/videos/{video_id}").headers["cache-control"] == "private, max-age=30"
    # when it is served again two seconds later
    time.sleep(2.1)
    again = api.get(f"/api/videos/{video_id}")
    # then browsers may keep it only for the rest of the window
    assert again.headers["cache-control"] == "private, max-age=28"


def test_without_its_redis_the_cache_answers_from_the_database() -> None:
    # given a micro-cache whose Redis cannot be reached
    cache = StatusCache(Settings(rate_limit_redis_url="redis://127.0.0.1:1/0"))
    loads: list[StatusEntry] = []

    def load() -> StatusEntry:
        loads.append(StatusEntry.of(b"{}", status="processing", video_key="k", settings=Settings()))
        return loads[-1]

    # when a status is looked up twice, then each lookup reads the database and answers
    assert cache.lookup("v1", "owner", load) is loads[0]
    assert cache.lookup("v1", "owner", load) is loads[1]
    cache.close()
