"""``videofleet flower`` against a real worker: the chain is visible, the API is authenticated.

Flower starts as a child process on a free port with the fleet's broker; it only knows what the
workers' events tell it, so every check polls with a deadline.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
import redis
from celery import Celery

from producer.dev import localstack
from producer.ops.flower import flower_links
from producer.ops.metrics import queue_keys
from schema.lanes import Lane
from schema.message import QUEUE, TASK_NAMES
from schema.status import Step
from tests.integration.conftest import Fleet, _free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
USERS = ("ops", "0ps-pass-word")
CREDENTIALS = f"{USERS[0]}:{USERS[1]},viewer:another-pass"
FLOWER_TIMEOUT_S = 45.0


@dataclass
class FlowerProcess:
    url: str
    log: Path

    def get(self, path: str, *, auth: tuple[str, str] | None = USERS) -> httpx2.Response:
        return httpx2.get(f"{self.url}{path}", auth=auth, timeout=5)

    def poll(self, what: str, check: Callable[[], Any]) -> Any:
        """Call ``check`` until it returns something truthy, or fail with Flower's log."""
        deadline = time.monotonic() + FLOWER_TIMEOUT_S
        while time.monotonic() < deadline:
            result = check()
            if result:
                return result
            time.sleep(0.25)
        pytest.fail(
            f"Flower: {what} not seen in {FLOWER_TIMEOUT_S} s; log:\n{self.log.read_text()[-3000:]}"
        )


def _start_flower(
    stack: ExitStack, fleet: Fleet, *, db: Path, log: Path, **env_overrides: str
) -> FlowerProcess:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **fleet.env,
        "FLOWER_BASIC_AUTH": CREDENTIALS,
        # videofleet's own FLOWER_URL must not reach Flower, which rejects unknown FLOWER_* options
        "FLOWER_URL": url,
        # failed logins of this Flower are counted apart from every other test's
        "RATE_LIMIT_KEY_PREFIX": f"flower-test-{uuid.uuid4().hex}",
        **env_overrides,
    }
    command = "from producer.cli import main; main()"
    args = [sys.executable, "-c", command, "flower", "--port", str(port), "--db", str(db)]
    proc = localstack.spawn(stack, [*args, "--state-save-interval-ms", "500"], log=log, env=env)
    flower = FlowerProcess(url, log)

    def healthy() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"Flower exited with {proc.returncode}; log:\n{log.read_text()[-3000:]}")
        try:
            return flower.get("/healthcheck", auth=None).status_code == 200
        except httpx2.TransportError:
            return False

    flower.poll("the health check", healthy)
    return flower


@pytest.fixture
def flower(fleet: Fleet, tmp_path: Path) -> Iterator[FlowerProcess]:
    with ExitStack() as stack:
        yield _start_flower(stack, fleet, db=tmp_path / "flower.db", log=tmp_path / "flower.log")


def _worker_online(flower: FlowerProcess, fleet: Fleet) -> bool:
    workers = flower.get("/api/workers?status=1").json()
    return any(
        name.startswith(f"{fleet.worker_name}@") and alive for name, alive in workers.items()
    )


def _chain_steps(flower: FlowerProcess, task_id: str, workflow_id: str) -> dict[str, str]:
    """name -> state of the tasks whose root is ``workflow_id``, found by the row's id."""
    found = flower.get(f"/api/tasks?search=args:{task_id}").json()
    return {
        t["name"]: t["state"]
        for t in found.values()
        if t.get("root_id") == workflow_id and t.get("name") in TASK_NAMES.values()
    }


def _run_chain(fleet: Fleet, video: Path, key: str) -> Any:
    [outcome] = fleet.deliver(fleet.upload(video, key))
    return fleet.wait(outcome.task_id)


def test_flower_shows_every_step_of_a_chain_succeeded_and_the_worker_online(
    fleet: Fleet, flower: FlowerProcess, h264_mp4: Path
) -> None:
    # given Flower receiving the worker's events
    flower.poll("the worker online", lambda: _worker_online(flower, fleet))
    # when a chain runs
    row = _run_chain(fleet, h264_mp4, "uploads/watched.mp4")
    assert row.status == "completed", row.error_message
    # then the row's id finds its three steps, all with the row's workflow_id as root, SUCCESS
    all_succeeded = {name: "SUCCESS" for name in TASK_NAMES.values()}
    flower.poll(
        "the chain's three steps",
        lambda: _chain_steps(flower, row.id, row.workflow_id) == all_succeeded,
    )
    # and the first step's id is the row's workflow_id, as flower-link prints it
    first = flower.get(f"/api/task/info/{row.workflow_id}").json()
    assert first["name"] == TASK_NAMES[Step.VALIDATE]
    assert first["root_id"] == row.workflow_id
    links = flower_links(flower.url, row.id, row.workflow_id)
    assert flower.get(links.first_step.removeprefix(flower.url)).status_code == 200
    assert len(flower.get(links.all_steps.removeprefix(flower.url)).json()) >= 3


def test_flower_counts_chain_steps_waiting_in_every_priority_list(
    fleet: Fleet, flower: FlowerProcess
) -> None:
    # given the worker not consuming, and a bulk chain's thumbnails step waiting (priority 8: a
    # list outside kombu's default levels 0, 3, 6, 9)
    control = Celery(broker=fleet.settings.broker_url, set_as_current=False)
    control.control.cancel_consumer(QUEUE, reply=True)
    try:
        fleet.publisher.publish_many(
            [("t-flower", "w-flower")], start=Step.THUMBNAILS, lanes={"t-flower": Lane.BULK}
        )
        # then Flower's queue length counts it
        flower.poll(
            "one message waiting on video-events",
            lambda: _queue_lengths(flower).get(QUEUE) == 1,
        )
    finally:
        with redis.Redis.from_url(fleet.settings.broker_url) as client:
            client.delete(*queue_keys(QUEUE))
        control.control.add_consumer(QUEUE, reply=True)
        control.close()


def _queue_lengths(flower: FlowerProcess) -> dict[str, int]:
    reply = flower.get("/api/queues/length").json()
    return {q["name"]: q["messages"] for q in reply["active_queues"]}


def test_flower_api_refuses_requests_without_valid_credentials(
    fleet: Fleet, flower: FlowerProcess
) -> None:
    # when the API is called without credentials, or with wrong ones
    anonymous = [flower.get(path, auth=None) for path in ("/api/tasks", "/api/workers", "/")]
    wrong = flower.get("/api/tasks", auth=(USERS[0], "not-the-password"))
    # then it is refused, while the second configured user and the metrics are let in
    assert [r.status_code for r in anonymous] == [401, 401, 401]
    assert wrong.status_code == 401
    assert flower.get("/api/workers", auth=("viewer", "another-pass")).status_code == 200
    metrics = flower.get("/metrics", auth=None)
    assert metrics.status_code == 200
    assert "flower_events_total" in metrics.text


def test_brute_forcing_flower_logins_gets_429_with_retry_after(
    fleet: Fleet, tmp_path: Path, limits_redis: tuple[str, str]
) -> None:
    # given Flower started by `videofleet flower` with 3 failed logins allowed per IP per hour
    redis_url, prefix = limits_redis
    with ExitStack() as stack:
        flower = _start_flower(
            stack,
            fleet,
            db=tmp_path / "flower.db",
            log=tmp_path / "flower.log",
            RATE_LIMIT_REDIS_URL=redis_url,
            RATE_LIMIT_KEY_PREFIX=prefix,
            RATE_LIMIT_FLOWER_AUTH_FAILURES_PER_IP_PER_HOUR="3",
        )
        # when requests without credentials ask for the prompt, they are 401 and count nothing
        assert [flower.get("/api/workers", auth=None).status_code for _ in range(5)] == [401] * 5
        # when one IP guesses passwords on the API and the pages
        codes = [
            flower.get(path, auth=(USERS[0], f"guess-{n}")).status_code
            for n in range(3)
            for path in ("/api/workers", "/")
        ]
        # then the first 3 guesses are 401 and the rest 429, the right password included
        assert codes == [401, 401, 401, 429, 429, 429]
        right = flower.get("/api/workers")
        assert right.status_code == 429
        assert 3500 < int(right.headers["Retry-After"]) <= 3600
        assert "failed logins per IP per hour" in right.text


def test_flower_keeps_the_chains_it_saw_across_a_restart(
    fleet: Fleet, h264_mp4: Path, tmp_path: Path
) -> None:
    db, all_succeeded = tmp_path / "flower.db", {name: "SUCCESS" for name in TASK_NAMES.values()}
    # given a chain Flower saw
    with ExitStack() as stack:
        flower = _start_flower(stack, fleet, db=db, log=tmp_path / "first.log")
        flower.poll("the worker online", lambda: _worker_online(flower, fleet))
        row = _run_chain(fleet, h264_mp4, "uploads/remembered.mp4")
        flower.poll(
            "the chain", lambda: _chain_steps(flower, row.id, row.workflow_id) == all_succeeded
        )
    # when Flower is stopped (SIGTERM) and started again on the same state file
    with ExitStack() as stack:
        flower = _start_flower(stack, fleet, db=db, log=tmp_path / "second.log")
        # then the chain is still there, although no event about it was sent since
        assert _chain_steps(flower, row.id, row.workflow_id) == all_succeeded
