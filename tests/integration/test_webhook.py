"""The push webhook through FastAPI's TestClient, on real PostgreSQL and a real Redis broker."""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from producer.web import create_app
from producer.web.webhook_auth import sign
from schema.settings import Settings
from schema.storage import make_s3_client
from schema.tables import rejected_events, tasks
from tests.factories import R2_DOC_EXAMPLE, minio_body, r2_body, s3_body
from tests.fleet import S3Server
from tests.integration.conftest import RedisServer

pytestmark = pytest.mark.integration

TOKEN = "webhook-test-token"
HMAC_SECRET = "webhook-test-hmac"
ACCESS_ID = "access-id.access"
ACCESS_SECRET = "access-test-secret"
URL = "/webhook/events"
MAX_BODY = 4096
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def webhook_settings(engine: Engine, broker: RedisServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": engine.url.render_as_string(hide_password=False),
        "broker_url": broker.url,
        "webhook_token": TOKEN,
        "webhook_hmac_secret": HMAC_SECRET,
        "webhook_access_client_id": ACCESS_ID,
        "webhook_access_client_secret": ACCESS_SECRET,
        "webhook_max_body_bytes": MAX_BODY,
        "webhook_retry_after_s": 7,
        "s3_endpoint_url": S3_ENDPOINT["url"],
        "ingest_extensions": "",  # the documented example's key has no extension
        "ingest_buckets": "bkt,my-bucket",  # the tests' bucket and the documented example's
        # failed logins are counted in the private broker's Redis: apart for each app, and
        # high enough for the property tests' hundreds of wrong credentials
        "rate_limit_key_prefix": f"webhook-test-{uuid.uuid4().hex}",
        "rate_limit_webhook_auth_failures_per_ip_per_hour": 100_000,
    }
    return Settings(**{**values, **overrides})


# Delete events reach the bucket (to remove thumbnails): the session's S3 server, bucket "bkt".
S3_ENDPOINT: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _bucket_b(s3_server: S3Server) -> None:
    S3_ENDPOINT["url"] = s3_server.url
    s3 = make_s3_client(Settings(s3_endpoint_url=s3_server.url))
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket="bkt")


@pytest.fixture
def client(transports_engine: Engine, broker: RedisServer) -> Iterator[TestClient]:
    with TestClient(create_app(webhook_settings(transports_engine, broker))) as test_client:
        yield test_client


def task_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(tasks)).scalar_one())


def rejections(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(rejected_events)).all())


def test_a_single_r2_notification_is_accepted_with_its_outcome(
    client: TestClient, transports_engine: Engine, broker: RedisServer
) -> None:
    # given the R2 docs' example notification, when it is posted with the bearer token
    response = client.post(URL, json=R2_DOC_EXAMPLE, headers=BEARER)
    # then it is accepted, one task row exists and one chain waits on the broker
    assert response.status_code == 202, response.text
    [message] = response.json()["messages"]
    [event] = message["events"]
    assert message["status"] == "accepted"
    assert (event["key"], event["result"]) == ("my-new-object", "published")
    assert task_count(transports_engine) == 1
    assert broker.queued() == 1


def test_s3_and_minio_bodies_of_one_upload_are_one_task_with_the_key_decoded(
    client: TestClient, transports_engine: Engine, broker: RedisServer
) -> None:
    # given one upload whose key needs decoding, reported by AWS S3 and by MinIO
    key = "uploads/a b+c.mp4"
    s3 = s3_body(bucket="bkt", key=key, etag="d" * 32)
    minio = minio_body(bucket="bkt", key=key, etag="d" * 32)
    # when both reach the webhook
    first = client.post(URL, json=s3, headers=BEARER)
    second = client.post(URL, json=minio, headers=BEARER)
    # then the key is decoded the same way, and the second report is a duplicate
    assert (first.status_code, second.status_code) == (202, 202)
    [[one]] = [m["events"] for m in first.json()["messages"]]
    [[two]] = [m["events"] for m in second.json()["messages"]]
    assert (one["key"], one["result"]) == (key, "published")
    assert (two["key"], two["result"]) == (key, "duplicate")
    assert task_count(transports_engine) == 1
    assert broker.queued() == 1


@pytest.mark.parametrize("envelope", ["list", "messages"])
def test_a_forwarded_worker_batch_reports_each_message_and_dedups(
    client: TestClient, transports_engine: Engine, broker: RedisServer, envelope: str
) -> None:
    # given a batch as the forwarding Worker sends it: a duplicate, a delete, a malformed body
    a = r2_body(bucket="bkt", key="uploads/a.mp4", etag="a" * 32)
    gone = r2_body(bucket="bkt", key="uploads/old.mp4", action="DeleteObject", size=None, etag=None)
    items = [
        {"id": "m1", "attempts": 1, "timestamp": "2026-11-28T10:00:00.000Z", "body": a},
        {"id": "m2", "attempts": 1, "timestamp": "2026-11-28T10:00:00.000Z", "body": a},
        {"id": "m3", "attempts": 2, "timestamp": "2026-11-28T10:00:00.000Z", "body": gone},
        {"id": "m4", "attempts": 1, "timestamp": "2026-11-28T10:00:00.000Z", "body": {"x": 1}},
    ]
    document: Any = items if envelope == "list" else {"messages": items}
    # when it is posted
    response = client.post(URL, json=document, headers=BEARER)
    # then every message has a verdict; one task and one chain for the duplicated upload
    assert response.status_code == 202, response.text
    report = response.json()
    assert (report["accepted"], report["rejected"]) == (3, 1)
    results = [(m["id"], m["status"]) for m in report["messages"]]
    assert results == [
        ("m1", "accepted"),
        ("m2", "accepted"),
        ("m3", "accepted"),
        ("m4", "rejected"),
    ]
    assert [e["result"] for m in report["messages"][:3] for e in m["events"]] == [
        "published",
        "duplicate",
        "deleted",
    ]
    assert task_count(transports_engine) == 1
    assert broker.queued() == 1
    [rejection] = rejections(transports_engine)
    assert (rejection.source, rejection.message_id) == ("webhook", "m4")
    assert json.loads(rejection.body) == items[3]


def test_a_lone_surrogate_message_id_is_echoed_back_not_a_500(
    client: TestClient, transports_engine: Engine, broker: RedisServer
) -> None:
    # given a forwarded batch whose message id is a lone UTF-16 surrogate (valid JSON text)
    body = json.dumps(r2_body(bucket="bkt", key="uploads/surrogate.mp4"))
    raw = f'[{{"id":"\\ud800","attempts":1,"timestamp":"t","body":{body}}}]'.encode()
    # when it is posted
    response = client.post(URL, content=raw, headers=BEARER)
    # then the message is accepted and its id comes back as it was sent
    assert response.status_code == 202, response.text
    [message] = response.json()["messages"]
    assert (message["id"], message["status"]) == ("\ud800", "accepted")
    assert task_count(transports_engine) == 1


def test_a_malformed_notification_is_400_naming_the_problem_and_recorded(
    client: TestClient, transports_engine: Engine, broker: RedisServer
) -> None:
    # given an R2 notification without an object key
    body = {"action": "PutObject", "bucket": "bkt", "object": {"size": 3}}
    # when it is posted
    response = client.post(URL, json=body, headers=BEARER)
    # then it is refused with the reason, recorded, and nothing is enqueued
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_event"
    assert "object key" in response.json()["message"]
    [rejection] = rejections(transports_engine)
    assert "object key" in rejection.reason
    assert json.loads(rejection.body) == body
    assert task_count(transports_engine) == 0
    assert broker.queued() == 0


@pytest.mark.parametrize("build", [r2_body, s3_body, minio_body], ids=["r2", "s3", "minio"])
@pytest.mark.parametrize(
    ("bucket", "problem"),
    [
        ("x", "not a bucket name"),
        ("Bad_Bucket", "not a bucket name"),
        ("a" * 64, "not a bucket name"),
        ("uploads/..%2f..%2fx.mp4", "not a bucket name"),
        ("someone-elses-bucket", "is not served here"),
    ],
)
def test_an_invalid_or_foreign_bucket_is_400_and_recorded_never_published(
    client: TestClient,
    transports_engine: Engine,
    broker: RedisServer,
    build: Any,
    bucket: str,
    problem: str,
) -> None:
    # given a notification of any source for a bucket the fleet does not serve
    body = build(bucket=bucket, key="uploads/a.mp4")
    # when it is posted
    response = client.post(URL, json=body, headers=BEARER)
    # then it is refused as an invalid event naming why, recorded, and nothing is enqueued
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_event"
    assert problem in response.json()["message"]
    [rejection] = rejections(transports_engine)
    assert problem in rejection.reason
    assert task_count(transports_engine) == 0
    assert broker.queued() == 0


def test_a_made_up_etag_is_400_and_recorded(
    client: TestClient, transports_engine: Engine, broker: RedisServer
) -> None:
    body = r2_body(bucket="bkt", key="uploads/a.mp4", etag="made-up-etag")
    response = client.post(URL, json=body, headers=BEARER)
    assert response.status_code == 400
    assert "not an entity tag" in response.json()["message"]
    assert "not an entity tag" in rejections(transports_engine)[0].reason
    assert task_count(transports_engine) == 0


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"{not json", "not UTF-8 JSON"),
        (b'"a string"', "got a string"),
        (b"[]", "empty batch"),
        (b'{"messages": 3}', "must be a list"),
        (b"\xff\xfe\x00", "not UTF-8 JSON"),
        (b"[" * 100_000, "nested too deeply"),
    ],
)
def test_a_body_that_is_not_a_notification_is_400(
    transports_engine: Engine, broker: RedisServer, raw: bytes, problem: str
) -> None:
    settings = webhook_settings(transports_engine, broker, webhook_max_body_bytes=200_000)
    with TestClient(create_app(settings)) as client:
        response = client.post(URL, content=raw, headers=BEARER)
    assert response.status_code == 400
    assert problem in response.json()["message"]
    assert len(rejections(transports_engine)) == 1


def test_the_aws_test_event_is_accepted_and_ignored(
    client: TestClient, transports_engine: Engine
) -> None:
    test_event = {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": "2026-11-28T10:00:00.000Z",
        "Bucket": "b",
        "RequestId": "r",
        "HostId": "h",
    }
    response = client.post(URL, json=test_event, headers=BEARER)
    assert response.status_code == 202
    assert response.json()["ignored"] == "s3:TestEvent"
    assert task_count(transports_engine) == 0
    assert rejections(transports_engine) == []


def test_the_api_document_declares_how_each_route_authenticates(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["AccessJWT"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Cf-Access-Jwt-Assertion",
        "description": schemes["AccessJWT"]["description"],
    }
    assert schemes["WebhookBearer"]["scheme"] == "bearer"
    assert schemes["WebhookHMAC"]["name"] == "x-videofleet-signature"
    paths = document["paths"]
    # any one of the webhook's methods will do; every upload route needs the Access JWT
    assert paths["/webhook/events"]["post"]["security"] == [
        {"WebhookBearer": []},
        {"WebhookHMAC": []},
        {"WebhookServiceToken": []},
    ]
    for path, item in paths.items():
        if path.startswith("/api/"):
            for operation in item.values():
                assert operation["security"] == [{"AccessJWT": []}], path
    assert paths["/metrics"]["get"]["security"] == [{"MetricsBasic": []}]
    assert not [path for path in paths if path.startswith("/admin")]


def test_minio_liveness_head_is_200_and_healthz_answers(client: TestClient) -> None:
    assert client.head(URL).status_code == 200
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_reports_database_and_broker(client: TestClient, broker: RedisServer) -> None:
    # given both up, then ready
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "database": "ok", "broker": "ok"}
    # when the broker goes down, then not ready, naming the broker
    broker.stop()
    down = client.get("/readyz")
    assert down.status_code == 503
    assert down.json()["database"] == "ok"
    assert down.json()["broker"].startswith("unavailable")


def test_readyz_is_503_when_the_database_is_down(broker: RedisServer) -> None:
    settings = Settings(
        database_url="postgresql+psycopg://postgres@127.0.0.1:1/none", broker_url=broker.url
    )
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["database"].startswith("unavailable")
    assert response.json()["broker"] == "ok"


def test_broker_down_is_503_with_retry_after_and_a_resend_succeeds(
    client: TestClient, transports_engine: Engine, broker: RedisServer
) -> None:
    # given the broker is down
    body = r2_body(bucket="bkt", key="uploads/retry.mp4")
    broker.stop()
    # when a notification arrives, then the sender is told to retry later
    response = client.post(URL, json=body, headers=BEARER)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"
    broker.start()
    assert broker.queued() == 0
    # and the resend after recovery publishes the chain once
    again = client.post(URL, json=body, headers=BEARER)
    assert again.status_code == 202
    assert again.json()["messages"][0]["events"][0]["result"] == "published"
    assert broker.queued() == 1
    assert task_count(transports_engine) == 1


def test_database_down_is_503_with_retry_after(broker: RedisServer) -> None:
    settings = Settings(
        database_url="postgresql+psycopg://postgres@127.0.0.1:1/none",
        broker_url=broker.url,
        webhook_token=TOKEN,
    )
    with TestClient(create_app(settings)) as client:
        good = client.post(URL, json=r2_body(bucket="bkt", key="uploads/k.mp4"), headers=BEARER)
        bad = client.post(URL, json={"x": 1}, headers=BEARER)
    # then both a valid and a malformed body are 503: neither could be recorded
    assert (good.status_code, bad.status_code) == (503, 503)
    assert good.headers["Retry-After"] == "10"
    assert broker.queued() == 0


# -- authentication: every path --

BODY = json.dumps(r2_body(bucket="bkt", key="uploads/auth.mp4")).encode()


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": f"Bearer {TOKEN}"}, 202),
        ({"Authorization": f"bearer   {TOKEN} "}, 202),
        ({"Authorization": "Bearer wrong"}, 403),
        ({"Authorization": f"Basic {TOKEN}"}, 403),
        ({"Authorization": "Bearer"}, 403),
        ({"Authorization": ""}, 403),
        ({"X-Videofleet-Signature": sign(HMAC_SECRET, BODY)}, 202),
        (
            {"X-Videofleet-Signature": sign(HMAC_SECRET, BODY).upper().replace("SHA256", "sha256")},
            202,
        ),
        ({"X-Videofleet-Signature": sign("other-secret", BODY)}, 403),
        ({"X-Videofleet-Signature": sign(HMAC_SECRET, BODY + b" ")}, 403),
        ({"X-Videofleet-Signature": sign(HMAC_SECRET, BODY)[7:]}, 403),
        ({"X-Videofleet-Signature": "sha256=zz"}, 403),
        ({"CF-Access-Client-Id": ACCESS_ID, "CF-Access-Client-Secret": ACCESS_SECRET}, 202),
        ({"CF-Access-Client-Id": ACCESS_ID, "CF-Access-Client-Secret": "wrong"}, 403),
        ({"CF-Access-Client-Id": "other", "CF-Access-Client-Secret": ACCESS_SECRET}, 403),
        ({"CF-Access-Client-Id": ACCESS_ID}, 403),
        ({"CF-Access-Client-Secret": ACCESS_SECRET}, 403),
        ({"Authorization": "Bearer wrong", "X-Videofleet-Signature": sign(HMAC_SECRET, BODY)}, 202),
    ],
)
def test_authentication_paths(
    client: TestClient, transports_engine: Engine, headers: dict[str, str], status: int
) -> None:
    # given a webhook with all three methods configured, when a request carries these headers
    response = client.post(URL, content=BODY, headers=headers)
    # then only valid credentials get in, and a refused request leaves no trace
    assert response.status_code == status, response.text
    if status == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"
    if status != 202:
        assert task_count(transports_engine) == 0
        assert rejections(transports_engine) == []


@pytest.mark.parametrize(
    "wrong",
    [
        {"Authorization": "Bearer guess"},
        {"X-Videofleet-Signature": "sha256=" + "0" * 64},
        {"CF-Access-Client-Id": ACCESS_ID, "CF-Access-Client-Secret": "guess"},
    ],
    ids=["bearer", "hmac", "access"],
)
def test_brute_forcing_webhook_credentials_gets_429_with_retry_after(
    transports_engine: Engine, broker: RedisServer, wrong: dict[str, str]
) -> None:
    # given a webhook allowing 4 failed logins per IP per hour
    settings = webhook_settings(
        transports_engine, broker, rate_limit_webhook_auth_failures_per_ip_per_hour=4
    )
    with TestClient(create_app(settings)) as client:
        # when one IP keeps guessing
        codes = [client.post(URL, content=BODY, headers=wrong).status_code for _ in range(7)]
        # then the first 4 are 403 and the rest 429 with Retry-After, the right token included
        assert codes == [403] * 4 + [429] * 3
        refused = client.post(URL, content=BODY, headers=BEARER)
        assert refused.status_code == 429
        assert refused.json()["error"] == "rate_limited"
        assert 3500 < int(refused.headers["Retry-After"]) <= 3600
        # and a request without credentials is a 401 that counts nothing
    fresh = webhook_settings(
        transports_engine, broker, rate_limit_webhook_auth_failures_per_ip_per_hour=1
    )
    with TestClient(create_app(fresh)) as client:
        assert {client.post(URL, content=BODY).status_code for _ in range(5)} == {401}
        assert client.post(URL, content=BODY, headers=BEARER).status_code == 202
    assert task_count(transports_engine) == 1


@pytest.mark.parametrize(
    ("configured", "headers"),
    [
        ({"webhook_token": TOKEN}, {"Authorization": f"Bearer {TOKEN}"}),
        ({"webhook_hmac_secret": HMAC_SECRET}, {"X-Videofleet-Signature": sign(HMAC_SECRET, BODY)}),
        (
            {"webhook_access_client_id": ACCESS_ID, "webhook_access_client_secret": ACCESS_SECRET},
            {"CF-Access-Client-Id": ACCESS_ID, "CF-Access-Client-Secret": ACCESS_SECRET},
        ),
    ],
)
def test_each_method_alone_admits_its_credentials_and_refuses_none(
    transports_engine: Engine,
    broker: RedisServer,
    configured: dict[str, str],
    headers: dict[str, str],
) -> None:
    settings = Settings(
        database_url=transports_engine.url.render_as_string(hide_password=False),
        broker_url=broker.url,
        ingest_buckets="bkt",
        **configured,  # type: ignore[arg-type]
    )
    with TestClient(create_app(settings)) as client:
        assert client.post(URL, content=BODY).status_code == 401
        assert (
            client.post(URL, content=BODY, headers={"Authorization": "Bearer x"}).status_code == 403
        )
        assert client.post(URL, content=BODY, headers=headers).status_code == 202


def test_development_without_auth_admits_anyone(
    transports_engine: Engine, broker: RedisServer
) -> None:
    settings = Settings(
        database_url=transports_engine.url.render_as_string(hide_password=False),
        broker_url=broker.url,
        ingest_buckets="bkt",
    )
    with TestClient(create_app(settings)) as client:
        assert client.post(URL, content=BODY).status_code == 202


def test_a_disabled_webhook_is_404(transports_engine: Engine, broker: RedisServer) -> None:
    settings = webhook_settings(transports_engine, broker, webhook_enabled=False)
    with TestClient(create_app(settings)) as client:
        assert client.post(URL, content=BODY, headers=BEARER).status_code == 404


# -- body size --


def test_a_declared_oversized_body_is_413(client: TestClient, transports_engine: Engine) -> None:
    response = client.post(URL, content=b" " * (MAX_BODY + 1), headers=BEARER)
    assert response.status_code == 413
    assert rejections(transports_engine) == []


def test_a_chunked_oversized_body_is_413_while_reading(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    response = client.post(URL, content=chunks(), headers=BEARER)
    assert response.status_code == 413


def test_an_unauthenticated_oversized_body_is_401_not_read(client: TestClient) -> None:
    assert client.post(URL, content=b" " * (MAX_BODY * 4)).status_code == 401


def test_a_non_numeric_content_length_is_400(client: TestClient) -> None:
    response = client.post(URL, content=BODY, headers={**BEARER, "Content-Length": "lots"})
    assert response.status_code == 400


# -- property-based: arbitrary input never breaks the webhook and never enqueues anything --

# Any code point, lone surrogates included (json.dumps writes them as \\udXXX escapes).
ANY_TEXT = st.text(st.characters(exclude_categories=()))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=16,
)
# Never a usable key: not a string, or a string a database cannot store.
NOT_A_KEY = (
    JSON.filter(lambda v: not isinstance(v, str))
    | st.text().map(lambda s: s + "\x00")
    | st.text().map(lambda s: "\ud800" + s)
)
R2_SHAPED = st.fixed_dictionaries(
    {
        "action": st.sampled_from(["PutObject", "CopyObject", "Nope", 1]),
        "bucket": JSON | st.just("bucket"),
    },
    optional={"object": st.dictionaries(st.sampled_from(["key", "size", "eTag"]), NOT_A_KEY)},
)
FORWARDED = st.lists(
    st.fixed_dictionaries({"body": JSON | R2_SHAPED}, optional={"id": JSON, "attempts": JSON}),
    max_size=4,
)
DOCUMENTS = JSON | R2_SHAPED | FORWARDED | st.fixed_dictionaries({"messages": JSON | FORWARDED})
PROPERTY = hypothesis_settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _assert_refused_or_harmless(response: Any, engine: Engine, broker: RedisServer) -> None:
    assert response.status_code in (202, 400), response.text
    assert response.headers["content-type"] == "application/json"
    if response.status_code == 202:
        report = response.json()
        assert report.get("ignored") or report["accepted"] == 0
    assert task_count(engine) == 0
    assert broker.queued() == 0


@given(document=DOCUMENTS)
@PROPERTY
def test_arbitrary_json_is_never_a_500_and_never_enqueues(
    client: TestClient, transports_engine: Engine, broker: RedisServer, document: Any
) -> None:
    response = client.post(URL, content=json.dumps(document).encode(), headers=BEARER)
    _assert_refused_or_harmless(response, transports_engine, broker)


@given(raw=st.binary(max_size=2 * MAX_BODY))
@PROPERTY
def test_arbitrary_bytes_are_never_a_500_and_never_enqueue(
    client: TestClient, transports_engine: Engine, broker: RedisServer, raw: bytes
) -> None:
    response = client.post(URL, content=raw, headers=BEARER)
    if len(raw) > MAX_BODY:
        assert response.status_code == 413
    else:
        _assert_refused_or_harmless(response, transports_engine, broker)


HEX_ETAG = st.from_regex(r"[0-9a-f]{32}(-[0-9]{1,2})?", fullmatch=True)


@given(
    message_id=ANY_TEXT | JSON,
    bucket=ANY_TEXT | st.sampled_from(["bkt", "my-bucket", "video-uploads", "Bkt", "bk"]),
    etag=ANY_TEXT | HEX_ETAG,
)
@PROPERTY
def test_any_bucket_etag_and_message_id_is_published_only_when_served_and_hex(
    client: TestClient,
    transports_engine: Engine,
    broker: RedisServer,
    message_id: Any,
    bucket: str,
    etag: str,
) -> None:
    # given a forwarded message of a valid R2 body, whatever its id, bucket and eTag
    body = r2_body(bucket=bucket, key="uploads/p.mp4", etag=etag)
    document = [{"id": message_id, "attempts": 1, "timestamp": "t", "body": body}]
    # when it is posted, then it is never a 500: accepted only for a served bucket and a hex eTag
    response = client.post(URL, content=json.dumps(document).encode(), headers=BEARER)
    assert response.status_code == 202, response.text
    [message] = response.json()["messages"]
    # (an empty eTag, quotes stripped, is no eTag, as on delete events)
    bare = etag.strip().strip('"')
    hex_or_none = not bare or re.fullmatch(r"[0-9A-Fa-f]{1,256}(-[0-9]+)?", bare) is not None
    served = bucket in ("bkt", "my-bucket") and hex_or_none
    assert message["status"] == ("accepted" if served else "rejected")
    assert message["id"] == (message_id if isinstance(message_id, str) and message_id else None)
    # hypothesis reuses the fixtures across examples: leave nothing for the next one
    with transports_engine.begin() as conn:
        conn.execute(sa.delete(tasks))
        conn.execute(sa.delete(rejected_events))
    with broker.client() as redis_client:
        redis_client.flushdb()


@given(
    raw=st.binary(max_size=256),
    headers=st.dictionaries(
        st.sampled_from(
            [
                "Authorization",
                "X-Videofleet-Signature",
                "CF-Access-Client-Id",
                "CF-Access-Client-Secret",
            ]
        ),
        st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
    ),
)
@PROPERTY
def test_arbitrary_credentials_are_refused(
    client: TestClient, transports_engine: Engine, raw: bytes, headers: dict[str, str]
) -> None:
    response = client.post(URL, content=raw, headers=headers)
    assert response.status_code == (403 if headers else 401)
    assert rejections(transports_engine) == []
