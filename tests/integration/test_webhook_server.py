"""The webhook served by a real uvicorn on a free port, feeding a real worker fleet."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import uvicorn
from pydantic import SecretStr

from producer.dev.localstack import free_port
from producer.web import create_app
from producer.web.webhook_auth import sign
from schema.settings import Settings
from tests.integration.conftest import Fleet

pytestmark = pytest.mark.integration

TOKEN = "server-test-token"
HMAC_SECRET = "server-test-hmac"
MAX_BODY = 64 * 1024


class WebhookServer:
    """``create_app(settings)`` under uvicorn in a thread."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> WebhookServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                pytest.fail("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=20)


@pytest.fixture
def server(fleet: Fleet) -> Iterator[WebhookServer]:
    settings = fleet.settings.model_copy(
        update={
            "webhook_token": SecretStr(TOKEN),
            "webhook_hmac_secret": SecretStr(HMAC_SECRET),
            "webhook_max_body_bytes": MAX_BODY,
        }
    )
    with WebhookServer(settings) as running:
        yield running


def test_a_forwarded_batch_over_http_is_processed_once_by_the_worker(
    fleet: Fleet, server: WebhookServer, h264_mp4: Path
) -> None:
    # given an uploaded video whose notification the forwarding Worker sends twice in one batch
    body = fleet.upload(h264_mp4, "uploads/pushed.mp4")
    batch = [
        {"id": f"m{n}", "attempts": 1, "timestamp": "2026-11-28T10:00:00.000Z", "body": body}
        for n in range(2)
    ]
    # when it is posted over HTTP with the bearer token
    with httpx2.Client(base_url=server.url) as client:
        response = client.post(
            "/webhook/events", json=batch, headers={"Authorization": f"Bearer {TOKEN}"}
        )
    # then it is accepted; the worker completes one task for the upload
    assert response.status_code == 202, response.text
    events = [m["events"][0] for m in response.json()["messages"]]
    assert [e["result"] for e in events] == ["published", "duplicate"]
    row = fleet.wait(events[0]["task_id"])
    assert row.status == "completed", row.error_message
    assert len(fleet.rows()) == 1


def test_a_signed_single_notification_over_http_is_processed(
    fleet: Fleet, server: WebhookServer, h264_mp4: Path
) -> None:
    # given an uploaded video and its notification signed with the HMAC secret
    raw = json.dumps(fleet.upload(h264_mp4, "uploads/signed.mp4")).encode()
    headers = {"X-Videofleet-Signature": sign(HMAC_SECRET, raw), "Content-Type": "application/json"}
    # when it is posted
    with httpx2.Client(base_url=server.url) as client:
        response = client.post("/webhook/events", content=raw, headers=headers)
    # then the worker completes its task
    assert response.status_code == 202, response.text
    task_id = response.json()["messages"][0]["events"][0]["task_id"]
    assert fleet.wait(task_id).status == "completed"


def test_chunked_bodies_are_counted_while_reading_over_http(
    fleet: Fleet, server: WebhookServer
) -> None:
    # given a chunked body (no Content-Length) larger than the limit
    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_BODY // 1024 + 8):
            yield b" " * 1024

    with httpx2.Client(base_url=server.url) as client:
        response = client.post(
            "/webhook/events", content=chunks(), headers={"Authorization": f"Bearer {TOKEN}"}
        )
        # then it is cut off with 413, and the server still answers MinIO's liveness HEAD
        assert response.status_code == 413
        assert client.head("/webhook/events").status_code == 200
        assert client.get("/readyz").status_code == 200
    assert fleet.rows() == []
