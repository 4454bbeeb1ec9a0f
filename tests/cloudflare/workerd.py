"""Workers run in workerd, Cloudflare's runtime, through Miniflare (``serve.mjs`` beside this).

The Node packages come from ``package-lock.json`` here (``npm ci``, run by ``make services``);
a missing install fails the test with the command to run, it never skips.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx2
import pytest

from producer.dev import localstack

HERE = Path(__file__).parent
READY_TIMEOUT_S = 60.0
D1_DATABASE_ID = "6a1f0d3e-0000-4000-8000-00000000d1d1"
D1_ACCOUNT_ID = "videofleet-test-account"
D1_API_TOKEN = "d1-test-token"
NODE_ENV = {"WRANGLER_SEND_METRICS": "false", "NO_COLOR": "1"}


def require_node_modules() -> None:
    """Fail (never skip) when the pinned Miniflare/wrangler are not installed."""
    if shutil.which("node") is None:
        pytest.fail("node is not installed: bash deploy/install-system-deps.sh --for-tests")
    if not (HERE / "node_modules" / "miniflare").is_dir():
        pytest.fail(f"Miniflare is not installed: npm ci --prefix {HERE} (or make services)")


def serve(stack: ExitStack, mode: str, *args: str, workdir: Path) -> str:
    """Start ``serve.mjs MODE`` in workerd; return the URL it listens on."""
    require_node_modules()
    workdir.mkdir(parents=True, exist_ok=True)
    ready = workdir / f"{mode}.ready"
    ready.unlink(missing_ok=True)
    log = workdir / f"{mode}.log"
    proc = localstack.spawn(
        stack,
        ["node", str(HERE / "serve.mjs"), mode, str(ready), str(workdir / "persist"), *args],
        log=log,
        env={**os.environ, **NODE_ENV},
    )
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"workerd ({mode}) did not start; log:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    return str(json.loads(ready.read_text())["url"])


class D1Api:
    """A local D1 database behind the D1 query route (``workers/d1_api.js``), in workerd."""

    def __init__(self, url: str) -> None:
        self.url = url

    @property
    def base_url(self) -> str:
        """What ``D1_API_BASE_URL`` is set to: the SDK appends ``/accounts/...`` to it."""
        return f"{self.url}/client/v4"

    def outage(self, on: bool) -> None:
        """Make every API call answer 503 (``on``) or be served again."""
        httpx2.put(f"{self.url}/__outage", content=b"on" if on else b"off").raise_for_status()

    def query(self, sql: str, *params: str) -> list[dict[str, Any]]:
        """Run one statement over the same route the fleet uses; return its rows."""
        response = httpx2.post(
            f"{self.base_url}/accounts/{D1_ACCOUNT_ID}/d1/database/{D1_DATABASE_ID}/query",
            json={"sql": sql, "params": list(params)},
            headers={"Authorization": f"Bearer {D1_API_TOKEN}", "X-Test-Reader": "1"},
        )
        response.raise_for_status()
        return list(response.json()["result"][0]["results"])

    def wait_row(
        self, sql: str, *params: str, until: Any = bool, timeout_s: float = 60.0
    ) -> list[dict[str, Any]]:
        """Poll ``sql`` until ``until(rows)`` holds (the mirror is asynchronous)."""
        deadline = time.monotonic() + timeout_s
        while True:
            rows = self.query(sql, *params)
            if until(rows) or time.monotonic() > deadline:
                return rows
            time.sleep(0.2)


def wrangler(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the pinned wrangler offline in ``cwd``."""
    require_node_modules()
    return subprocess.run(
        [str(HERE / "node_modules" / ".bin" / "wrangler"), *args],
        cwd=cwd,
        env={**os.environ, **NODE_ENV},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
