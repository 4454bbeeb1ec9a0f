"""The upload API over HTTP on real services: SQLite, moto's S3 server, Redis, a local JWKS.

No worker here: these tests stop at the bucket. The fleet's side (the task row carrying the
video id, thumbnails in the status) is in ``tests/e2e``.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx2
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from producer.web import create_app
from schema.settings import Settings
from schema.storage import make_s3_client
from schema.tables import videos
from tests.access_keys import JwksServer, SigningKey
from tests.fleet import S3Server, reset_database
from tests.upload_env import bearer, upload_settings

pytestmark = pytest.mark.integration

API_BUCKET = "videofleet-api-test"
MIB = 1024 * 1024


@pytest.fixture
def base_settings(s3_server: S3Server, tmp_path: Path) -> Iterator[Settings]:
    """A migrated SQLite database and an empty bucket of this test's own."""
    url = f"sqlite:///{tmp_path}/api.db"
    reset_database(url).dispose()
    settings = Settings(database_url=url, s3_endpoint_url=s3_server.url, s3_bucket=API_BUCKET)
    s3 = make_s3_client(settings)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=API_BUCKET)
    yield settings
    for obj in s3.list_objects_v2(Bucket=API_BUCKET).get("Contents", []):
        s3.delete_object(Bucket=API_BUCKET, Key=obj["Key"])
    s3.close()


class Api:
    """A client of one app, with the token of one user by default."""

    def __init__(self, client: TestClient, settings: Settings, key: SigningKey) -> None:
        self.client = client
        self.settings = settings
        self.key = key
        self.headers = bearer(key.token())

    def post(self, path: str, body: Any, **kwargs: Any) -> httpx2.Response:
        kwargs.setdefault("headers", self.headers)
        return self.client.post(path, json=body, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx2.Response:
        kwargs.setdefault("headers", self.headers)
        return self.client.get(path, **kwargs)

    def video(self, video_id: str) -> Any:
        engine = sa.create_engine(self.settings.database_url)
        with engine.connect() as conn:
            row = conn.execute(sa.select(videos).where(videos.c.id == video_id)).one()
        engine.dispose()
        return row


@pytest.fixture
def make_api(
    base_settings: Settings,
    jwks: JwksServer,
    access_key: SigningKey,
    limits_redis: tuple[str, str],
) -> Iterator[Any]:
    """Build an app for ``base_settings`` plus overrides and return a client for it."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> Api:
        settings = upload_settings(
            base_settings, jwks_url=jwks.url, limits=limits_redis, **overrides
        )
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        return Api(client, settings, access_key)

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def _error(response: httpx2.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error"]["code"], body["error"]["message"]


def test_upload_url_is_a_presigned_put_bound_to_type_and_length_and_creates_the_row(
    make_api: Any, h264_mp4: Path
) -> None:
    # given a user with a valid Access token
    api = make_api()
    data = h264_mp4.read_bytes()
    # when they ask for an upload URL for an MP4
    response = api.post(
        "/api/upload-url",
        {"filename": "My Holiday (1).mp4", "contentType": "video/mp4", "size": len(data)},
    )
    # then they get a presigned PUT for uploads/<uuid>-<safe name>, valid for an hour
    assert response.status_code == 201, response.text
    out = response.json()
    assert set(out) == {"uploadUrl", "key", "videoId", "contentType", "expiresAt"}
    assert out["key"].startswith("uploads/")
    assert out["key"].endswith("-My-Holiday-1.mp4")
    query = parse_qs(urlparse(out["uploadUrl"]).query)
    assert query["X-Amz-Expires"] == ["3600"]
    assert query["X-Amz-SignedHeaders"] == ["content-length;content-type;host"]
    # and the video row waits in status uploading, owned by the token's subject
    row = api.video(out["videoId"])
    assert (row.status, row.r2_key, row.filename) == ("uploading", out["key"], "My Holiday (1).mp4")
    assert (row.content_type, row.size_bytes) == ("video/mp4", len(data))
    assert row.owner == "7335d417-61da-459d-899c-0a01c76a2f94"
    # and the URL takes the file, as a browser would send it
    put = httpx2.put(out["uploadUrl"], content=data, headers={"Content-Type": "video/mp4"})
    assert put.status_code == 200, put.text
    s3 = make_s3_client(api.settings)
    assert s3.head_object(Bucket=API_BUCKET, Key=out["key"])["ContentLength"] == len(data)
    s3.close()


def test_the_upload_page_offers_exactly_the_types_the_api_takes(make_api: Any) -> None:
    # given INGEST_EXTENSIONS narrowed to three containers, one of them MPEG-TS
    api = make_api(ingest_extensions=".mp4,.ts,.txt")
    # when the page is loaded, then it carries the types the API will sign, and only those
    page = api.client.get("/upload").text
    types = json.loads(re.search(r'id="video-types"[^>]*>(.*?)</script>', page, re.S)[1])
    assert types == {".mp4": "video/mp4", ".ts": "video/mp2t"}
    assert 'accept="video/mp2t,video/mp4,.mp4,.ts"' in page
    # and the API signs a .ts upload and refuses a type ingest would ignore
    ts = api.post("/api/upload-url", {"filename": "cam.ts", "contentType": "video/mp2t", "size": 9})
    assert ts.status_code == 201, ts.text
    mov = {"filename": "a.mov", "contentType": "video/quicktime", "size": 9}
    assert _error(api.post("/api/upload-url", mov))[1] == "unsupported_type"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            {"filename": "notes.txt", "contentType": "text/plain", "size": 10},
            400,
            "unsupported_type",
        ),
        ({"filename": "a.mp4", "contentType": "video/webm", "size": 10}, 400, "unsupported_type"),
        ({"filename": "a.mp4", "contentType": "video/mp4", "size": 0}, 400, "empty_file"),
        ({"filename": "   ", "contentType": "video/mp4", "size": 10}, 400, "bad_filename"),
        (
            {"filename": "a.mp4", "contentType": "video/mp4", "size": 5_000_000_001},
            413,
            "file_too_large",
        ),
        (
            {"filename": "a.mp4", "contentType": "video/mp4", "size": 50 * MIB + 1},
            413,
            "use_multipart",
        ),
        ({"filename": "a.mp4", "contentType": "video/mp4"}, 422, "invalid_request"),
        ({"filename": "a.mp4", "contentType": "video/mp4", "size": "big"}, 422, "invalid_request"),
        # strict JSON types: no string or boolean is taken as a size
        ({"filename": "a.mp4", "contentType": "video/mp4", "size": "1000"}, 422, "invalid_request"),
        ({"filename": "a.mp4", "contentType": "video/mp4", "size": True}, 422, "invalid_request"),
        ({"filename": 7, "contentType": "video/mp4", "size": 10}, 422, "invalid_request"),
        # names that would cut or forge lines, or that no database can store
        ({"filename": "a\x00.mp4", "contentType": "video/mp4", "size": 10}, 400, "bad_filename"),
        (
            {"filename": "a\r\nX: y.mp4", "contentType": "video/mp4", "size": 10},
            400,
            "bad_filename",
        ),
        ({"filename": "a\u2028b.mp4", "contentType": "video/mp4", "size": 10}, 400, "bad_filename"),
    ],
)
def test_bad_upload_requests_get_a_clear_json_error_and_no_row(
    make_api: Any, body: dict[str, Any], status: int, code: str
) -> None:
    api = make_api()
    response = api.post("/api/upload-url", body)
    got_status, got_code, message = _error(response)
    assert (got_status, got_code) == (status, code)
    assert message
    engine = sa.create_engine(api.settings.database_url)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(videos)).scalar() == 0
    engine.dispose()


def _multipart_uploads(settings: Settings) -> list[Any]:
    s3 = make_s3_client(settings)
    try:
        return list(s3.list_multipart_uploads(Bucket=API_BUCKET).get("Uploads", []))
    finally:
        s3.close()


def test_a_nul_in_a_multipart_filename_is_400_and_leaves_no_upload_in_the_bucket(
    make_api: Any,
) -> None:
    api = make_api()
    body = {"filename": "big\x00.mp4", "contentType": "video/mp4", "size": 60 * MIB}
    assert _error(api.post("/api/multipart", body))[:2] == (400, "bad_filename")
    assert _multipart_uploads(api.settings) == []


def test_a_multipart_upload_whose_row_cannot_be_written_is_aborted(make_api: Any) -> None:
    # given a database that refuses the videos row (its table is gone)
    api = make_api()
    engine = sa.create_engine(api.settings.database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE videos RENAME TO videos_away"))
    try:
        # when a multipart upload is started
        body = {"filename": "big.mp4", "contentType": "video/mp4", "size": 60 * MIB}
        with pytest.raises(sa.exc.OperationalError):
            api.post("/api/multipart", body)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE videos_away RENAME TO videos"))
        engine.dispose()
    # then the multipart upload it created in the bucket was aborted: nothing is left billed
    assert _multipart_uploads(api.settings) == []


def test_multipart_create_refuses_files_above_5_gb(make_api: Any) -> None:
    api = make_api()
    body = {"filename": "big.mkv", "contentType": "video/x-matroska", "size": 5_000_000_001}
    assert _error(api.post("/api/multipart", body))[:2] == (413, "file_too_large")


def test_a_request_without_the_access_header_is_401_unauthorized(make_api: Any) -> None:
    api = make_api()
    response = api.post(
        "/api/upload-url", {"filename": "a.mp4", "contentType": "video/mp4", "size": 1}, headers={}
    )
    assert _error(response) == (401, "unauthorized", "Unauthorized")
    assert _error(api.get("/api/videos/x", headers={}))[0] == 401


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(lambda k: k.token(aud=["another-application"]), id="wrong-audience"),
        pytest.param(lambda k: k.token(iss="https://evil.cloudflareaccess.com"), id="wrong-issuer"),
        pytest.param(lambda k: k.token(exp=1_700_000_000, iat=1_699_999_000), id="expired"),
        pytest.param(lambda k: k.token(exp=None), id="no-expiry"),
        pytest.param(lambda k: SigningKey(kid=k.kid).token(), id="bad-signature-with-a-known-kid"),
        pytest.param(lambda k: SigningKey().token(), id="unknown-kid"),
        pytest.param(lambda k: "not.a.jwt", id="garbage"),
        pytest.param(lambda k: k.token(sub="", email=None), id="no-subject"),
    ],
)
def test_an_invalid_or_expired_token_is_403_invalid_token(
    make_api: Any, access_key: SigningKey, token: Any
) -> None:
    api = make_api()
    body = {"filename": "a.mp4", "contentType": "video/mp4", "size": 1}
    response = api.post("/api/upload-url", body, headers=bearer(token(access_key)))
    assert _error(response) == (403, "invalid_token", "Invalid token")


def test_a_service_token_is_identified_by_its_common_name(
    make_api: Any, access_key: SigningKey
) -> None:
    api = make_api()
    body = {"filename": "a.mp4", "contentType": "video/mp4", "size": 1}
    token = access_key.service_token("88bf3b6d86161464f6509f7219099e57.access")
    response = api.post("/api/upload-url", body, headers=bearer(token))
    assert response.status_code == 201, response.text
    assert api.video(response.json()["videoId"]).owner == "88bf3b6d86161464f6509f7219099e57.access"


def test_keys_are_cached_and_fetched_again_when_access_rotates_them(
    make_api: Any, jwks: JwksServer
) -> None:
    # given an app that has verified one token (one JWKS fetch), refetching without a cooldown
    api = make_api(access_jwks_refetch_cooldown_s=0)
    body = {"filename": "a.mp4", "contentType": "video/mp4", "size": 1}
    assert api.post("/api/upload-url", body).status_code == 201
    assert api.post("/api/upload-url", body).status_code == 201
    assert jwks.fetches == 1
    # when Access adds a new key and signs with it
    new_key = SigningKey()
    jwks.keys.append(new_key)
    response = api.post("/api/upload-url", body, headers=bearer(new_key.token()))
    # then the unknown kid makes the verifier fetch the keys once more, and the token passes
    assert response.status_code == 201, response.text
    assert jwks.fetches == 2
    assert all(ua.startswith("videofleet/") for ua in jwks.user_agents)


def test_forged_key_ids_do_not_refetch_the_keys_within_the_cooldown(
    make_api: Any, jwks: JwksServer
) -> None:
    api = make_api()
    body = {"filename": "a.mp4", "contentType": "video/mp4", "size": 1}
    assert api.post("/api/upload-url", body).status_code == 201
    statuses = [
        api.post("/api/upload-url", body, headers=bearer(SigningKey().token())).status_code
        for _ in range(3)
    ]
    assert statuses == [403, 403, 403]
    assert jwks.fetches == 1


def test_without_access_configured_the_api_answers_503_with_what_to_set(make_api: Any) -> None:
    api = make_api(access_team_domain="", access_aud="")
    body = {"filename": "a.mp4", "contentType": "video/mp4", "size": 1}
    status, code, message = _error(api.post("/api/upload-url", body))
    assert (status, code) == (503, "access_not_configured")
    assert "ACCESS_TEAM_DOMAIN" in message
    assert "ACCESS_AUD" in message


def test_access_disabled_for_development_answers_as_the_local_user(make_api: Any) -> None:
    api = make_api(access_team_domain="", access_aud="", access_disabled=True)
    body = {"filename": "a.mp4", "contentType": "video/mp4", "size": 1}
    response = api.post("/api/upload-url", body, headers={})
    assert response.status_code == 201, response.text
    assert api.video(response.json()["videoId"]).owner == "local-development"


def test_access_disabled_is_refused_in_production() -> None:
    with pytest.raises(ValueError, match="ACCESS_DISABLED=true is refused"):
        Settings(environment="production", access_disabled=True, s3_secret_access_key="real-one")


def test_upload_starts_per_user_per_minute_are_limited_with_retry_after(make_api: Any) -> None:
    api = make_api(rate_limit_upload_urls_per_user_per_minute=2)
    body = {"filename": "a.mp4", "contentType": "video/mp4", "size": 1}
    # a refused request costs nothing
    assert api.post("/api/upload-url", {**body, "filename": "a.txt"}).status_code == 400
    assert [api.post("/api/upload-url", body).status_code for _ in range(2)] == [201, 201]
    response = api.post("/api/upload-url", body)
    status, code, message = _error(response)
    assert (status, code) == (429, "rate_limited")
    assert "per user per minute" in message
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    # another user is not affected
    other = bearer(api.key.token(sub="another-user"))
    assert api.post("/api/upload-url", body, headers=other).status_code == 201


def test_upload_starts_per_ip_are_limited_across_users(make_api: Any) -> None:
    api = make_api(
        rate_limit_upload_urls_per_ip_per_minute=3,
        rate_limit_client_ip_header="CF-Connecting-IP",
    )
    body = {"filename": "a.mp4", "contentType": "video/mp4", "size": 1}
    statuses = [
        api.post(
            "/api/upload-url",
            body,
            headers={**bearer(api.key.token(sub=f"user-{i}")), "CF-Connecting-IP": "203.0.113.7"},
        ).status_code
        for i in range(4)
    ]
    assert statuses == [201, 201, 201, 429]
    elsewhere = {**api.headers, "CF-Connecting-IP": "198.51.100.1"}
    assert api.post("/api/upload-url", body, headers=elsewhere).status_code == 201


def test_declared_bytes_per_user_per_day_are_limited(make_api: Any) -> None:
    api = make_api(rate_limit_upload_bytes_per_user_per_day=100 * MIB)
    body = {"filename": "a.mp4", "contentType": "video/mp4", "size": 40 * MIB}
    assert [api.post("/api/upload-url", body).status_code for _ in range(2)] == [201, 201]
    response = api.post("/api/upload-url", body)
    assert _error(response)[:2] == (429, "rate_limited")
    assert "bytes per user per day" in _error(response)[2]
    assert int(response.headers["Retry-After"]) >= 1
    # what is left of the day's bytes can still be used
    assert api.post("/api/upload-url", {**body, "size": 20 * MIB}).status_code == 201


def test_repeated_auth_failures_from_an_ip_are_blocked_even_with_a_valid_token(
    make_api: Any,
) -> None:
    api = make_api(rate_limit_auth_failures_per_ip_per_hour=3)
    body = {"filename": "a.mp4", "contentType": "video/mp4", "size": 1}
    failures = [
        api.post("/api/upload-url", body, headers=bearer("forged")).status_code,
        api.post("/api/upload-url", body, headers={}).status_code,
        api.post("/api/upload-url", body, headers=bearer("forged")).status_code,
    ]
    assert failures == [403, 401, 403]
    response = api.post("/api/upload-url", body)
    assert _error(response)[:2] == (429, "rate_limited")
    assert "failed logins per IP per hour" in _error(response)[2]
    assert int(response.headers["Retry-After"]) >= 1


def test_the_rate_limiter_without_redis_answers_503(make_api: Any) -> None:
    api = make_api(rate_limit_redis_url="redis://127.0.0.1:1/0")
    body = {"filename": "a.mp4", "contentType": "video/mp4", "size": 1}
    assert _error(api.post("/api/upload-url", body))[:2] == (503, "rate_limiter_unavailable")


def test_status_of_an_unknown_or_someone_elses_video_is_404(make_api: Any) -> None:
    api = make_api()
    body = {"filename": "a.mp4", "contentType": "video/mp4", "size": 1}
    video_id = api.post("/api/upload-url", body).json()["videoId"]
    assert _error(api.get("/api/videos/no-such-video"))[:2] == (404, "not_found")
    other = bearer(api.key.token(sub="another-user"))
    assert _error(api.get(f"/api/videos/{video_id}", headers=other))[:2] == (404, "not_found")
    # the owner sees it, still uploading, with no task and no URLs yet
    mine = api.get(f"/api/videos/{video_id}")
    assert mine.status_code == 200
    assert (mine.json()["status"], mine.json()["task"], mine.json()["thumbnails"]) == (
        "uploading",
        None,
        [],
    )


def test_the_page_and_the_openapi_document_are_served(make_api: Any) -> None:
    api = make_api()
    page = api.client.get("/", headers={})
    assert page.status_code == 200
    assert '<input id="file" type="file"' in page.text
    assert api.client.get("/static/upload.js").status_code == 200
    assert api.client.get("/static/upload.html").status_code == 404
    paths = api.client.get("/openapi.json").json()["paths"]
    assert {
        "/api/upload-url",
        "/api/multipart",
        "/api/multipart/{upload_id}/part-urls",
        "/api/multipart/{upload_id}/parts",
        "/api/multipart/{upload_id}/complete",
        "/api/multipart/{upload_id}",
        "/api/videos/{video_id}",
    } <= set(paths)
    assert api.client.get("/docs").status_code == 200
