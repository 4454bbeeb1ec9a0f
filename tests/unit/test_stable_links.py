"""Stable links: signed at a window's start (identical all window) or public; versioned keys."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import botocore.auth
import pytest

from producer.readside.links import ObjectLinks, link_window
from schema.settings import Settings
from schema.storage import make_s3_client
from workers.storage import storyboard_key, thumbnail_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

KEY = "thumbnails/uploads/u1/my clip.mp4/000.0123456789abcdef.jpg"
NOON = dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=dt.UTC).timestamp()


@pytest.fixture
def settings() -> Settings:
    return Settings(
        s3_endpoint_url="http://127.0.0.1:9",
        s3_bucket="videos",
        status_url_window_s=3600,
        status_url_expiry_s=300,
    )


@pytest.fixture
def s3(settings: Settings) -> Iterator[S3Client]:
    client = make_s3_client(settings)
    yield client
    client.close()


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_every_call_within_a_window_returns_the_byte_identical_url(
    settings: Settings, s3: S3Client
) -> None:
    urls = {
        ObjectLinks(s3, settings, "videos", now_s=NOON + offset).private(KEY)
        for offset in (0, 1, 1800, 3599)
    }
    assert len(urls) == 1
    query = _query(urls.pop())
    assert query["X-Amz-Date"] == "20261201T120000Z"
    # valid for the whole window plus the lifetime: the last URL handed out still lives 300 s
    assert query["X-Amz-Expires"] == "3900"


def test_the_next_window_signs_anew(settings: Settings, s3: S3Client) -> None:
    this = ObjectLinks(s3, settings, "videos", now_s=NOON + 3599).private(KEY)
    after = ObjectLinks(s3, settings, "videos", now_s=NOON + 3600).private(KEY)
    assert this != after
    assert _query(after)["X-Amz-Date"] == "20261201T130000Z"


def test_the_pinned_signature_is_the_one_botocore_makes_at_the_windows_start(
    settings: Settings, s3: S3Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given botocore's own presigner with its clock set to the window's start
    start = dt.datetime(2026, 12, 1, 12, 0, 0)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *_, **__: start)
    expected = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "videos", "Key": KEY}, ExpiresIn=3900
    )
    # then the pinned signer, asked 20 minutes later, produces exactly that URL
    pinned = ObjectLinks(s3, settings, "videos", now_s=NOON + 1200).private(KEY)
    assert pinned == expected


def test_a_zero_window_signs_at_each_call(settings: Settings, s3: S3Client) -> None:
    every_call = settings.model_copy(update={"status_url_window_s": 0})
    first = ObjectLinks(s3, every_call, "videos", now_s=NOON).private(KEY)
    second = ObjectLinks(s3, every_call, "videos", now_s=NOON + 1).private(KEY)
    assert first != second
    assert _query(second)["X-Amz-Expires"] == "300"
    assert link_window(NOON + 1, window_s=0, expiry_s=300).expires_at_s == int(NOON) + 301


def test_a_public_base_gives_plain_urls_for_derived_objects_only(
    settings: Settings, s3: S3Client
) -> None:
    public = settings.model_copy(
        update={"thumbnails_public_base_url": "https://thumbs.example.com"}
    )
    links = ObjectLinks(s3, public, "videos", now_s=NOON)
    assert links.derived(KEY) == (
        "https://thumbs.example.com/thumbnails/uploads/u1/my%20clip.mp4/000.0123456789abcdef.jpg"
    )
    # the video itself is never public
    assert "X-Amz-Signature=" in links.private("uploads/u1/my clip.mp4")


def test_a_public_base_with_a_trailing_slash_or_no_scheme_is_refused() -> None:
    for base in ("https://thumbs.example.com/", "thumbs.example.com"):
        with pytest.raises(ValueError, match="THUMBNAILS_PUBLIC_BASE_URL"):
            Settings(thumbnails_public_base_url=base)


def test_derived_keys_change_with_their_bytes_and_only_then() -> None:
    first = thumbnail_key("thumbnails/", "uploads/a.mp4", 0, b"jpeg one")
    assert first.startswith("thumbnails/uploads/a.mp4/000.")
    assert first.endswith(".jpg")
    assert thumbnail_key("thumbnails/", "uploads/a.mp4", 0, b"jpeg one") == first
    assert thumbnail_key("thumbnails/", "uploads/a.mp4", 0, b"jpeg two") != first
    sprite = storyboard_key("thumbnails/", "uploads/a.mp4", "storyboard.jpg", b"sprite")
    vtt = storyboard_key("thumbnails/", "uploads/a.mp4", "storyboard.vtt", b"WEBVTT")
    assert sprite.startswith("thumbnails/uploads/a.mp4/storyboard.")
    assert sprite.endswith(".jpg")
    assert vtt.endswith(".vtt")
