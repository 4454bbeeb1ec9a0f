"""Multipart uploads through the API, end to end: parts PUT to presigned URLs, resume, complete,
the R2 event, a real worker, thumbnails in the status; and the ways a client can get it wrong.

The producer runs under uvicorn; the client is httpx2, as a script or another service would be.
Parts are R2's minimum of 5 MiB, so an 11 MiB video goes up in three parts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa

from producer.dev.devserver import serve
from producer.dev.localstack import free_port
from schema.tables import videos
from tests.access_keys import JwksServer, SigningKey
from tests.factories import r2_body
from tests.fleet import BUCKET, Fleet
from tests.upload_env import bearer, upload_settings

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024


@pytest.fixture
def api(
    fleet: Fleet, jwks: JwksServer, access_key: SigningKey, limits_redis: tuple[str, str]
) -> Iterator[httpx2.Client]:
    """An httpx2 client of the producer on uvicorn, with 5 MiB parts, as the token's user."""
    port = free_port()
    settings = upload_settings(
        fleet.settings,
        jwks_url=jwks.url,
        limits=limits_redis,
        multipart_threshold_bytes=5 * MIB,
        multipart_part_size_bytes=5 * MIB,
    )
    with (
        serve(settings, port) as base_url,
        httpx2.Client(base_url=base_url, headers=bearer(access_key.token())) as client,
    ):
        yield client


def _create(api: httpx2.Client, path: Path) -> dict[str, Any]:
    body = {"filename": path.name, "contentType": "video/x-matroska", "size": path.stat().st_size}
    response = api.post("/api/multipart", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _put_parts(api: httpx2.Client, upload: dict[str, Any], data: bytes, numbers: list[int]) -> None:
    response = api.post(
        f"/api/multipart/{upload['uploadId']}/part-urls", json={"partNumbers": numbers}
    )
    assert response.status_code == 200, response.text
    size = upload["partSize"]
    for part in response.json()["parts"]:
        n = part["partNumber"]
        chunk = data[(n - 1) * size : n * size]
        assert part["size"] == len(chunk)
        put = httpx2.put(part["url"], content=chunk)
        assert put.status_code == 200, put.text


def test_a_multipart_upload_resumes_completes_and_is_processed_into_thumbnails(
    api: httpx2.Client, fleet: Fleet, raw_mkv: Path
) -> None:
    # given an 11 MiB video and a created multipart upload: three parts of 5 MiB, the last smaller
    data = raw_mkv.read_bytes()
    upload = _create(api, raw_mkv)
    assert (upload["partSize"], upload["partCount"]) == (5 * MIB, 3)
    base = f"/api/multipart/{upload['uploadId']}"
    # when the client sends two parts and is interrupted
    _put_parts(api, upload, data, [1, 2])
    # then ListParts tells it what the store already has
    listed = api.get(f"{base}/parts", params={"key": upload["key"]})
    assert listed.status_code == 200, listed.text
    stored = listed.json()["parts"]
    assert [(p["partNumber"], p["size"]) for p in stored] == [(1, 5 * MIB), (2, 5 * MIB)]
    # when it sends the rest and completes with every part's ETag
    _put_parts(api, upload, data, [3])
    parts = api.get(f"{base}/parts").json()["parts"]
    response = api.post(
        f"{base}/complete",
        json={"parts": [{"partNumber": p["partNumber"], "etag": p["etag"]} for p in parts]},
    )
    # then the object is whole, with R2's multipart ETag form
    assert response.status_code == 200, response.text
    done = response.json()
    assert done["etag"].endswith("-3")
    head = fleet.s3.head_object(Bucket=BUCKET, Key=upload["key"])
    assert head["ContentLength"] == len(data)
    # and the upload id is spent
    assert api.get(f"{base}/parts").status_code == 404
    # when R2's CompleteMultipartUpload notification reaches the fleet
    body = r2_body(bucket=BUCKET, key=upload["key"], size=len(data), etag=done["etag"])
    [outcome] = fleet.deliver({**body, "action": "CompleteMultipartUpload"})
    row = fleet.wait(outcome.task_id)
    # then the task carries the upload's video id and the status shows the thumbnails
    assert row.status == "completed", row.error_message
    assert row.video_id == upload["videoId"]
    status = api.get(f"/api/videos/{upload['videoId']}").json()
    assert status["status"] == "ready"
    assert status["metadata"]["probe"]["video_codec"] == "rawvideo"
    assert len(status["thumbnails"]) == 5
    for thumb in status["thumbnails"]:
        image = httpx2.get(thumb["url"])
        assert image.status_code == 200
        assert image.content[:2] == b"\xff\xd8"  # JPEG
    assert httpx2.get(status["videoUrl"], headers={"Range": "bytes=0-3"}).content == data[:4]


def test_only_the_owner_can_touch_an_upload_and_only_with_its_own_key(
    api: httpx2.Client, access_key: SigningKey, raw_mkv: Path
) -> None:
    upload = _create(api, raw_mkv)
    base = f"/api/multipart/{upload['uploadId']}"
    other = bearer(access_key.token(sub="someone-else"))
    parts = {"parts": [{"partNumber": n, "etag": "x"} for n in (1, 2, 3)]}
    assert api.post(f"{base}/complete", json=parts, headers=other).status_code == 404
    assert (
        api.post(f"{base}/part-urls", json={"partNumbers": [1]}, headers=other).status_code == 404
    )
    assert api.get(f"{base}/parts", headers=other).status_code == 404
    assert api.delete(base, headers=other).status_code == 404
    wrong_key = api.get(f"{base}/parts", params={"key": "uploads/someone-elses.mkv"})
    assert wrong_key.status_code == 404
    assert wrong_key.json()["error"]["code"] == "not_found"
    assert api.get("/api/multipart/no-such-upload/parts").status_code == 404


def test_bad_part_lists_are_refused_with_a_clear_error(api: httpx2.Client, raw_mkv: Path) -> None:
    upload = _create(api, raw_mkv)
    base = f"/api/multipart/{upload['uploadId']}"
    missing = api.post(f"{base}/complete", json={"parts": [{"partNumber": 1, "etag": "e"}]})
    assert (missing.status_code, missing.json()["error"]["code"]) == (400, "bad_parts")
    beyond = api.post(f"{base}/part-urls", json={"partNumbers": [4]})
    assert (beyond.status_code, beyond.json()["error"]["code"]) == (400, "bad_part_number")
    empty = api.post(f"{base}/part-urls", json={"partNumbers": []})
    assert (empty.status_code, empty.json()["error"]["code"]) == (422, "invalid_request")


def test_an_aborted_upload_is_gone_and_its_video_marked_deleted(
    api: httpx2.Client, fleet: Fleet, raw_mkv: Path
) -> None:
    upload = _create(api, raw_mkv)
    _put_parts(api, upload, raw_mkv.read_bytes(), [1])
    base = f"/api/multipart/{upload['uploadId']}"
    assert api.delete(base, params={"key": upload["key"]}).status_code == 204
    assert api.get(f"{base}/parts").status_code == 404
    assert api.delete(base).status_code == 404
    in_progress = fleet.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
    assert upload["uploadId"] not in {u["UploadId"] for u in in_progress}
    with fleet.engine.connect() as conn:
        status = conn.execute(
            sa.select(videos.c.status).where(videos.c.id == upload["videoId"])
        ).scalar()
    assert status == "deleted"
