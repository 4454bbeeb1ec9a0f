"""The admin HTTP API on a real database and broker: authentication, queries, requeue."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from producer.web import create_app
from schema.metadata import as_document
from schema.settings import Settings
from tests.integration.conftest import Fleet

pytestmark = pytest.mark.integration

ADMIN = ("ops", "a-long-admin-password")


def admin_settings(fleet: Fleet, limits: tuple[str, str], **overrides: Any) -> Settings:
    """The fleet's settings with an admin, and failed logins counted under a prefix of its own."""
    redis_url, prefix = limits
    values = {
        **fleet.settings.model_dump(),
        "admin_username": ADMIN[0],
        "admin_password": ADMIN[1],
        "rate_limit_redis_url": redis_url,
        "rate_limit_key_prefix": prefix,
        **overrides,
    }
    return Settings.model_validate(values)


@pytest.fixture
def client(fleet: Fleet, limits_redis: tuple[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(admin_settings(fleet, limits_redis))) as test_client:
        yield test_client


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_admin_api_does_not_exist_without_configured_credentials(fleet: Fleet) -> None:
    settings = Settings.model_validate(fleet.settings.model_dump())
    assert not settings.admin_enabled
    with TestClient(create_app(settings)) as plain:
        for path in ("/admin/", "/admin/api/tasks", "/admin/api/tasks/x"):
            assert plain.get(path, headers=_basic(*ADMIN)).status_code == 404
        assert plain.post("/admin/api/requeue", json={}).status_code == 404
        malformed = {"Authorization": "Basic !!!not-base64"}
        assert plain.get("/admin/api/tasks", headers=malformed).status_code == 404


@pytest.mark.parametrize(
    "headers",
    [
        {},
        _basic("ops", "wrong"),
        _basic("someone", ADMIN[1]),
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Bearer abc"},
    ],
    ids=["missing", "wrong-password", "wrong-user", "malformed", "not-basic"],
)
def test_missing_or_wrong_credentials_get_401_with_a_challenge(
    client: TestClient, headers: dict[str, str]
) -> None:
    for method, path in (
        ("GET", "/admin/"),
        ("GET", "/admin/api/tasks"),
        ("POST", "/admin/api/requeue"),
    ):
        response = client.request(method, path, headers=headers, json={})
        assert response.status_code == 401, (path, response.text)
        assert response.headers["WWW-Authenticate"].startswith('Basic realm="videofleet admin"')


def test_brute_forcing_the_admin_password_gets_429_with_retry_after_even_for_the_right_one(
    fleet: Fleet, limits_redis: tuple[str, str]
) -> None:
    # given an admin API allowing 5 failed logins per IP per hour
    settings = admin_settings(fleet, limits_redis, rate_limit_admin_auth_failures_per_ip_per_hour=5)
    with TestClient(create_app(settings)) as client:
        # when one IP tries wrong passwords on the API and the page
        codes = [
            client.get(path, headers=_basic("ops", f"guess-{n}")).status_code
            for n in range(8)
            for path in ("/admin/api/tasks", "/admin/")
        ]
        # then the first 5 are 401 and the rest 429, with Retry-After
        assert codes == [401] * 5 + [429] * 11
        refused = client.get("/admin/api/tasks", headers=_basic(*ADMIN))
        # and the right password is refused too while the IP is over the limit
        assert refused.status_code == 429
        assert 3500 < int(refused.headers["Retry-After"]) <= 3600
        assert "failed logins per IP per hour" in refused.json()["detail"]
    # and a browser's first request without credentials is not a failed login
    with TestClient(create_app(admin_settings(fleet, (limits_redis[0], "other")))) as fresh:
        assert {fresh.get("/admin/").status_code for _ in range(20)} == {401}
        assert fresh.get("/admin/api/tasks", headers=_basic(*ADMIN)).status_code == 200


def test_the_admin_part_of_the_api_document_is_for_the_admin_only(client: TestClient) -> None:
    # the public document leaves the admin routes out
    public = client.get("/openapi.json").json()
    assert not [path for path in public["paths"] if path.startswith("/admin")]
    assert client.get("/docs").status_code == 200
    # the whole document needs the admin's credentials (wrong ones count as failed logins)
    assert client.get("/admin/openapi.json").status_code == 401
    assert client.get("/admin/openapi.json", headers=_basic("ops", "guess")).status_code == 401
    whole = client.get("/admin/openapi.json", headers=_basic(*ADMIN))
    assert whole.status_code == 200
    requeue = whole.json()["paths"]["/admin/api/tasks/{task_id}/requeue"]["post"]
    assert requeue["security"] == [{"AdminBasic": []}]
    assert whole.json()["components"]["securitySchemes"]["AdminBasic"]["scheme"] == "basic"
    assert client.get("/admin/docs", headers=_basic(*ADMIN)).status_code == 200


def test_page_and_task_list_with_counts_for_the_admin(
    client: TestClient, fleet: Fleet, h264_mp4: Path, not_a_video: Path
) -> None:
    [good] = fleet.deliver(fleet.upload(h264_mp4, "uploads/a/good.mp4"))
    [bad] = fleet.deliver(fleet.upload(not_a_video, "uploads/b/bad.mp4"))
    fleet.wait(good.task_id)
    fleet.wait(bad.task_id)
    auth = _basic(*ADMIN)
    page = client.get("/admin/", headers=auth)
    assert page.status_code == 200
    assert "videofleet admin" in page.text
    assert page.headers["content-type"].startswith("text/html")
    listing = client.get("/admin/api/tasks", params={"status": "failed"}, headers=auth).json()
    assert listing["counts"] == {"pending": 0, "processing": 0, "completed": 1, "failed": 1}
    [task] = listing["tasks"]
    assert task["id"] == bad.task_id
    assert "no container" in task["error_message"]
    by_prefix = client.get(
        "/admin/api/tasks", params={"key_prefix": "uploads/a/"}, headers=auth
    ).json()
    assert [t["id"] for t in by_prefix["tasks"]] == [good.task_id]
    assert by_prefix["counts"]["completed"] == 1
    assert by_prefix["counts"]["failed"] == 0
    by_text = client.get(
        "/admin/api/tasks",
        params={"error_contains": "no container", "newer_than": "1h"},
        headers=auth,
    ).json()
    assert [t["id"] for t in by_text["tasks"]] == [bad.task_id]
    old = client.get("/admin/api/tasks", params={"older_than": "1h"}, headers=auth).json()
    assert old["tasks"] == []
    bad_age = client.get("/admin/api/tasks", params={"older_than": "soon"}, headers=auth)
    assert bad_age.status_code == 422
    assert "not an age" in bad_age.json()["detail"]
    one = client.get(f"/admin/api/tasks/{good.task_id}", headers=auth).json()
    assert one["metadata"]["probe"]["video_codec"] == "h264"
    assert client.get("/admin/api/tasks/nope", headers=auth).status_code == 404


def test_requeue_through_the_api_records_the_admin_and_refuses_what_it_must(
    client: TestClient, fleet: Fleet, h264_mp4: Path, not_a_video: Path
) -> None:
    [good] = fleet.deliver(fleet.upload(h264_mp4, "uploads/good.mp4"))
    bad_ids = [
        fleet.deliver(fleet.upload(not_a_video, f"uploads/bad-{i}.mp4"))[0].task_id
        for i in range(3)
    ]
    for task_id in [good.task_id, *bad_ids]:
        fleet.wait(task_id)
    auth = _basic(*ADMIN)
    # one task
    response = client.post(
        f"/admin/api/tasks/{bad_ids[0]}/requeue", json={"reason": "try again"}, headers=auth
    )
    assert response.status_code == 200, response.text
    assert response.json()["from_step"] == "validate-video"
    fleet.wait(bad_ids[0])
    [record] = as_document(fleet.row(bad_ids[0]).metadata)["requeues"]
    assert (record["by"], record["reason"]) == ("ops", "try again")
    # refusals
    completed = client.post(f"/admin/api/tasks/{good.task_id}/requeue", headers=auth)
    assert completed.status_code == 409
    assert "force" in completed.json()["detail"]
    assert client.post("/admin/api/tasks/nope/requeue", headers=auth).status_code == 404
    # by filter: a dry run changes nothing, then a limited run requeues the oldest two
    body = {"error_contains": "no container", "dry_run": True}
    dry = client.post("/admin/api/requeue", json=body, headers=auth).json()
    assert dry["summary"] == {"would-requeue": 3}
    done = client.post(
        "/admin/api/requeue", json={**body, "dry_run": False, "limit": 2}, headers=auth
    ).json()
    assert done["summary"] == {"requeued": 2}
    assert all(o["from_step"] == "validate-video" for o in done["outcomes"])
    for task_id in bad_ids:
        fleet.wait(task_id)
    counts = [len(as_document(fleet.row(i).metadata)["requeues"]) for i in bad_ids]
    # the oldest failures went first; the task requeued a moment ago was not among them
    assert counts == [1, 1, 1]
    assert bad_ids[0] not in {o["task_id"] for o in done["outcomes"]}


def test_a_request_another_site_triggers_may_not_requeue(
    client: TestClient, fleet: Fleet, not_a_video: Path
) -> None:
    # given a failed task and a browser holding the admin's credentials
    [bad] = fleet.deliver(fleet.upload(not_a_video, "uploads/csrf.mp4"))
    fleet.wait(bad.task_id)
    auth = _basic(*ADMIN)
    # when a page on another site makes that browser post a requeue
    for site in ("cross-site", "same-site"):
        response = client.post(
            f"/admin/api/tasks/{bad.task_id}/requeue",
            headers={**auth, "Sec-Fetch-Site": site},
        )
        # then it is refused and nothing changes
        assert response.status_code == 403, site
    assert as_document(fleet.row(bad.task_id).metadata).get("requeues") is None
    # while reading stays possible, and the page itself (same-origin) may requeue
    reading = client.get("/admin/api/tasks", headers={**auth, "Sec-Fetch-Site": "cross-site"})
    assert reading.status_code == 200
    same = client.post(
        f"/admin/api/tasks/{bad.task_id}/requeue",
        headers={**auth, "Sec-Fetch-Site": "same-origin"},
    )
    assert same.status_code == 200, same.text
