"""The upload page reading a processed video: conditional polling, cached images, the storyboard.

A video goes through the page and the fleet (as in ``test_upload_page``); then the page of the
ready video is shown again (a reload of ``/upload?video=<id>``) with Chromium's network log
attached: the status answers 304, and no thumbnail, sprite or WebVTT map crosses the network
again, since their links are the same and the objects immutable. The storyboard scrubs: moving
the pointer along its bar shows the sprite's tile for that time.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from producer.dev.browser import NetworkLog
from producer.dev.devserver import serve
from producer.dev.localstack import free_port
from tests.access_keys import JwksServer, SigningKey
from tests.e2e.test_upload_page import PAGE_TIMEOUT_MS, _page_settings, _video
from tests.factories import r2_body
from tests.fleet import BUCKET, Fleet

pytestmark = pytest.mark.e2e

IMAGES_LOADED = (
    "[...document.querySelectorAll('#thumbnails img')]"
    ".every(img => img.complete && img.naturalWidth > 0)"
)


def _upload_and_process(page: Page, fleet: Fleet, video: Path) -> str:
    """Choose ``video`` in the page, deliver its notification, wait for ready; its video id."""
    page.locator("#file").set_input_files(str(video))
    status = page.locator("#status")
    expect(status).to_have_attribute("data-state", "uploaded", timeout=PAGE_TIMEOUT_MS)
    video_id: str = page.evaluate("document.body.dataset.videoId")
    key = _video(fleet, video_id).r2_key
    head = fleet.s3.head_object(Bucket=BUCKET, Key=key)
    body = r2_body(bucket=BUCKET, key=key, size=head["ContentLength"], etag=head["ETag"].strip('"'))
    fleet.deliver({**body, "action": "PutObject"})
    expect(status).to_have_attribute("data-state", "ready", timeout=PAGE_TIMEOUT_MS)
    return video_id


def _scrub_to(page: Page, fraction: float) -> str:
    """Move the pointer to ``fraction`` of the storyboard's bar; the tile it shows (x,y,w,h)."""
    box = page.locator("#scrub").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * fraction, box["y"] + box["height"] / 2)
    xywh: str = page.locator("#tile").get_attribute("data-xywh") or ""
    return xywh


def test_a_second_look_at_a_ready_video_downloads_no_image_and_the_storyboard_scrubs(
    fleet: Fleet,
    jwks: JwksServer,
    access_key: SigningKey,
    limits_redis: tuple[str, str],
    browser_context: BrowserContext,
    artifacts_dir: Path,
    h264_mp4: Path,
) -> None:
    # given the page on a video the fleet has processed, with Chromium's network log attached
    port = free_port()
    settings = _page_settings(fleet, jwks, limits_redis, f"http://127.0.0.1:{port}")
    s3_url = fleet.s3_server.url
    with serve(settings, port, access_token=access_key.token()) as base_url:
        page = browser_context.new_page()
        network = NetworkLog.attach(page)
        page.goto(f"{base_url}/upload")
        video_id = _upload_and_process(page, fleet, h264_mp4)
        page.wait_for_function(IMAGES_LOADED, timeout=PAGE_TIMEOUT_MS)
        expect(page.locator("#storyboard")).to_be_visible()
        first_images = [f for f in network.since(containing=s3_url) if f.downloaded]
        assert page.url.endswith(f"/upload?video={video_id}")

        # when the user scrubs along the storyboard
        tiles = [_scrub_to(page, fraction) for fraction in (0.05, 0.95)]
        # then the start and the end show different tiles of the sprite, which the page loaded
        assert tiles[0] == "0,0,160,120"
        assert tiles[1] != tiles[0]
        sprite_url = page.evaluate(
            "getComputedStyle(document.getElementById('tile')).backgroundImage"
        )
        assert ".jpg" in sprite_url
        assert "storyboard." in sprite_url
        page.screenshot(path=str(artifacts_dir / "status-storyboard.png"), full_page=True)

        # when the page of the ready video is shown again
        mark = network.mark()
        page.reload()
        expect(page.locator("#status")).to_have_attribute(
            "data-state", "ready", timeout=PAGE_TIMEOUT_MS
        )
        page.wait_for_function(IMAGES_LOADED, timeout=PAGE_TIMEOUT_MS)
        expect(page.locator("#storyboard")).to_be_visible()
        assert len(set(_scrub_to(page, f) for f in (0.05, 0.95))) == 2

    # then the status was asked conditionally and answered 304
    statuses = network.since(mark, containing=f"/api/videos/{video_id}")
    assert [f.status for f in statuses] == [304]
    # and no thumbnail, sprite or WebVTT map crossed the network again
    again = network.since(mark, containing=s3_url)
    assert [f.url for f in again if f.downloaded] == []
    assert network.bytes_received(mark, containing=s3_url) == 0
    # while the first view did download them: 5 thumbnails, the map and the sprite
    assert len(first_images) >= settings.thumbnail_count + 2
