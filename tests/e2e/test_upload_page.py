"""The upload page in headless Chromium, from choosing a file to seeing its thumbnails.

The page is served by uvicorn; it PUTs the file straight to moto's S3 server (whose bucket has
the CORS rules ``videofleet cors`` makes, and no others); the test then delivers the R2 event
notification for the uploaded key through ``producer.events.ingest`` (``fleet.deliver``), as R2's
queue would; a real Celery worker processes it; the page polls the status API until the thumbnails
show. Cloudflare Access is played by an ``AccessEdge`` in front of the app that adds a signed JWT
to the page's API requests, as Access does at the edge; the browser's CORS preflights to the
bucket are real, except where a test intercepts the bucket's requests to cut one off (Playwright
answers preflights itself while it intercepts).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import sqlalchemy as sa
from playwright.sync_api import BrowserContext, Page, Request, Route, expect

from producer.uploads import cors
from schema.settings import Settings
from schema.tables import tasks, videos
from tests.access_keys import JwksServer, SigningKey
from tests.e2e.conftest import serve
from tests.factories import r2_body
from tests.fleet import BUCKET, Fleet, _free_port
from tests.upload_env import upload_settings

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024
PAGE_TIMEOUT_MS = 90_000
RESUME_KEY = "videofleet.multipart"  # upload.js: the multipart uploads this browser left open


def _video(fleet: Fleet, video_id: str) -> Any:
    with fleet.engine.connect() as conn:
        return conn.execute(sa.select(videos).where(videos.c.id == video_id)).one()


def _page_settings(
    fleet: Fleet, jwks: JwksServer, limits: tuple[str, str], origin: str, **overrides: Any
) -> Settings:
    """The fleet's settings for the upload API, with the bucket's CORS rules set for ``origin``."""
    settings = upload_settings(
        fleet.settings,
        jwks_url=jwks.url,
        limits=limits,
        upload_allowed_origins=origin,
        **overrides,
    )
    cors.apply(settings)
    return settings


def _part_number(request: Request) -> str | None:
    """The part number of a multipart part PUT, else None."""
    numbers = parse_qs(urlparse(request.url).query).get("partNumber")
    return numbers[0] if request.method == "PUT" and numbers else None


def _fail_first_try_of_part(page: Page, s3_url: str, part_number: int) -> list[str]:
    """Cut off the first PUT of one part at the network level; return the part numbers PUT."""
    seen: list[str] = []
    failed: list[str] = []

    def maybe_fail(route: Route) -> None:
        number = _part_number(route.request)
        if number is not None:
            seen.append(number)
            if number == str(part_number) and not failed:
                failed.append(number)
                route.abort("connectionreset")
                return
        route.continue_()

    page.route(f"{s3_url}/**", maybe_fail)
    return seen


@pytest.mark.parametrize("mode", ["single", "multipart"])
def test_a_video_chosen_in_the_page_is_uploaded_processed_and_shows_its_thumbnails(
    mode: str,
    fleet: Fleet,
    jwks: JwksServer,
    access_key: SigningKey,
    limits_redis: tuple[str, str],
    browser_context: BrowserContext,
    artifacts_dir: Path,
    h264_mp4: Path,
    raw_mkv: Path,
) -> None:
    # given the producer on uvicorn, the bucket's CORS rules for its origin, and a signed-in user
    port = _free_port()
    overrides: dict[str, Any] = {}
    if mode == "multipart":
        overrides |= {"multipart_threshold_bytes": 5 * MIB, "multipart_part_size_bytes": 5 * MIB}
    settings = _page_settings(fleet, jwks, limits_redis, f"http://127.0.0.1:{port}", **overrides)
    video_file = h264_mp4 if mode == "single" else raw_mkv
    with serve(settings, port, access_token=access_key.token()) as base_url:
        page = browser_context.new_page()
        part_puts: list[str] = []
        if mode == "multipart":
            part_puts = _fail_first_try_of_part(page, fleet.s3_server.url, 2)
        page.goto(f"{base_url}/")
        expect(page.locator("h1")).to_have_text("Upload a video")

        # when the user chooses the file
        page.locator("#file").set_input_files(str(video_file))

        # then the page uploads it straight to the bucket and says so
        status = page.locator("#status")
        expect(status).to_have_attribute("data-state", "uploaded", timeout=PAGE_TIMEOUT_MS)
        expect(page.locator("#progress")).to_have_attribute("value", "100")
        video_id = page.evaluate("document.body.dataset.videoId")
        video = _video(fleet, video_id)
        assert video.status == "uploading"
        head = fleet.s3.head_object(Bucket=BUCKET, Key=video.r2_key)
        assert head["ContentLength"] == video_file.stat().st_size == video.size_bytes

        # when R2's notification for the new object reaches the fleet
        etag = head["ETag"].strip('"')
        action = "PutObject" if mode == "single" else "CompleteMultipartUpload"
        body = r2_body(bucket=BUCKET, key=video.r2_key, size=video.size_bytes, etag=etag)
        [outcome] = fleet.deliver({**body, "action": action})

        # then the page follows the processing and shows every thumbnail
        expect(status).to_have_attribute("data-state", "ready", timeout=PAGE_TIMEOUT_MS)
        thumbnails = page.locator("#thumbnails img")
        expect(thumbnails).to_have_count(settings.thumbnail_count)
        page.wait_for_function(
            "[...document.querySelectorAll('#thumbnails img')]"
            ".every(img => img.complete && img.naturalWidth > 0)",
            timeout=PAGE_TIMEOUT_MS,
        )
        backend = fleet.engine.dialect.name
        screenshot = artifacts_dir / f"upload-page-{mode}-{backend}.png"
        page.screenshot(path=str(screenshot), full_page=True)
        print(f"\nscreenshot: {screenshot}")
        assert "Ready: 5 thumbnails" in status.inner_text()

    # and the task the producer created for the key carries the page's video id
    row = fleet.row(outcome.task_id)
    assert row.status == "completed", row.error_message
    assert row.video_id == video_id
    assert _video(fleet, video_id).status == "ready"
    with fleet.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(tasks)).scalar() == 1
    if mode == "multipart":
        # three parts, the second one sent twice: its first try was cut off and retried
        assert etag.endswith("-3")
        assert sorted(part_puts) == ["1", "2", "2", "3"]


def test_the_page_refuses_a_non_video_and_a_file_over_5_gb_before_uploading(
    fleet: Fleet,
    jwks: JwksServer,
    access_key: SigningKey,
    limits_redis: tuple[str, str],
    browser_context: BrowserContext,
    tmp_path: Path,
) -> None:
    # given the page, with every request it makes recorded
    port = _free_port()
    settings = _page_settings(fleet, jwks, limits_redis, f"http://127.0.0.1:{port}")
    with serve(settings, port, access_token=access_key.token()) as base_url:
        page = browser_context.new_page()
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto(f"{base_url}/upload")
        # when the user picks a text file
        notes = tmp_path / "notes.txt"
        notes.write_text("not a video")
        page.locator("#file").set_input_files(str(notes))
        # then the page says why and asks nothing of the API
        expect(page.locator("#error")).to_contain_text("not a supported video")
        # when the user picks a file above 5 GB (a sparse file: no disk used)
        huge = tmp_path / "huge.mp4"
        with huge.open("wb") as handle:
            handle.truncate(5_000_000_001)
        page.locator("#file").set_input_files(str(huge))
        # then it is refused before any upload starts
        expect(page.locator("#error")).to_contain_text("the limit is 5 GB")
        expect(page.locator("#status")).to_have_attribute("data-state", "failed")
        assert not [url for url in requests if "/api/" in url]


def test_without_cors_rules_for_the_pages_origin_the_browser_cannot_put_to_the_bucket(
    fleet: Fleet,
    jwks: JwksServer,
    access_key: SigningKey,
    limits_redis: tuple[str, str],
    browser_context: BrowserContext,
    h264_mp4: Path,
) -> None:
    # given a bucket whose CORS rules allow another origin only
    port = _free_port()
    settings = _page_settings(fleet, jwks, limits_redis, "https://videos.example.com")
    with serve(settings, port, access_token=access_key.token()) as base_url:
        page = browser_context.new_page()
        page.goto(f"{base_url}/upload")
        # when the user chooses a video
        page.locator("#file").set_input_files(str(h264_mp4))
        # then the bucket refuses the browser's preflight, no PUT is sent, the page says so
        expect(page.locator("#error")).to_contain_text("network error", timeout=PAGE_TIMEOUT_MS)
    assert fleet.keys("uploads/") == []


def test_a_multipart_upload_cut_off_by_a_reload_resumes_with_only_the_missing_parts(
    fleet: Fleet,
    jwks: JwksServer,
    access_key: SigningKey,
    limits_redis: tuple[str, str],
    browser_context: BrowserContext,
    raw_mkv: Path,
) -> None:
    # given the page with 5 MiB parts, and a bucket that never answers the third part's PUT
    port = _free_port()
    settings = _page_settings(
        fleet,
        jwks,
        limits_redis,
        f"http://127.0.0.1:{port}",
        multipart_threshold_bytes=5 * MIB,
        multipart_part_size_bytes=5 * MIB,
    )
    s3_routes = f"{fleet.s3_server.url}/**"
    with serve(settings, port, access_token=access_key.token()) as base_url:
        page = browser_context.new_page()

        def hold_third_part(route: Route) -> None:
            if _part_number(route.request) != "3":
                route.continue_()  # part 3 is left hanging, as on a dead connection

        page.route(s3_routes, hold_third_part)
        page.goto(f"{base_url}/")
        page.locator("#file").set_input_files(str(raw_mkv))
        # when parts 1 and 2 are stored and the user reloads the page
        page.wait_for_function(f"localStorage.getItem('{RESUME_KEY}')")
        [upload_id] = page.evaluate(f"Object.values(JSON.parse(localStorage['{RESUME_KEY}']))")
        with fleet.engine.connect() as conn:
            found = conn.execute(sa.select(videos.c.r2_key).where(videos.c.upload_id == upload_id))
            key = found.scalar_one()

        def stored_parts() -> int:
            listing = fleet.s3.list_parts(Bucket=BUCKET, Key=key, UploadId=upload_id)
            return len(listing.get("Parts", []))

        deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
        while stored_parts() < 2:
            assert time.monotonic() < deadline, "parts 1 and 2 were never stored"
            page.wait_for_timeout(100)  # not time.sleep: Playwright runs route handlers meanwhile
        page.reload()  # before unroute, which would let the held part through
        page.unroute(s3_routes)
        sent_after_reload: list[str] = []
        page.on("request", lambda r: (n := _part_number(r)) and sent_after_reload.append(n))
        # and chooses the same file again
        page.locator("#file").set_input_files(str(raw_mkv))
        # then the page resumes the same upload, sends the third part only, and completes it
        expect(page.locator("#status")).to_have_attribute(
            "data-state", "uploaded", timeout=PAGE_TIMEOUT_MS
        )
        assert sent_after_reload == ["3"]
        head = fleet.s3.head_object(Bucket=BUCKET, Key=key)
        assert head["ETag"].strip('"').endswith("-3")
        assert head["ContentLength"] == raw_mkv.stat().st_size
        assert page.evaluate(f"localStorage.getItem('{RESUME_KEY}')") == "{}"
