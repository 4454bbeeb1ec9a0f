"""The forwarder Worker in workerd as the consumer of a real local queue, feeding the real
``videofleet serve`` webhook, a real worker, and the D1 write-back; wrangler checks its config.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx2
import pytest
import sqlalchemy as sa

from producer.dev import localstack
from producer.events.sources.r2 import parse_r2
from schema.tables import videos
from tests.cloudflare import workerd
from tests.cloudflare.workerd import D1Api
from tests.integration.conftest import D1_FLEET_WEBHOOK_TOKEN, D1Fleet, _free_port

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).parents[2] / "deploy" / "cloudflare"
ACCEPTED = '"POST /webhook/events HTTP/1.1" 202'
REFUSED = '"POST /webhook/events HTTP/1.1" 503'


class Forwarding:
    """``videofleet serve`` on a free port, and the forwarder consuming ``video-events``."""

    def __init__(self, stack: ExitStack, fleet: D1Fleet, workdir: Path) -> None:
        port = _free_port()
        self.serve_log = workdir / "serve.log"
        localstack.spawn(
            stack,
            [sys.executable, "-m", "producer", "serve", "--port", str(port)],
            log=self.serve_log,
            env=fleet.env,
        )
        localstack.wait_listening("127.0.0.1", port, what="videofleet serve")
        ingest_url = f"http://127.0.0.1:{port}/webhook/events"
        self.queue_url = workerd.serve(
            stack, "forwarder", ingest_url, D1_FLEET_WEBHOOK_TOKEN, workdir=workdir
        )
        self.forwarder_log = workdir / "forwarder.log"

    def send(self, *bodies: object) -> None:
        """Put R2 notifications on the local queue in one ``sendBatch``, as R2 would."""
        httpx2.post(self.queue_url, content=json.dumps(bodies)).raise_for_status()

    def count(self, text: str) -> int:
        return self.serve_log.read_text().count(text)

    def wait_log(self, path: Path, text: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in path.read_text():
            if time.monotonic() > deadline:
                pytest.fail(f"{path.name} never logged {text!r}:\n{path.read_text()[-3000:]}")
            time.sleep(0.2)


@pytest.fixture
def forwarding(d1_fleet: D1Fleet, tmp_path: Path) -> Iterator[Forwarding]:
    with ExitStack() as stack:
        yield Forwarding(stack, d1_fleet, tmp_path)


def test_notifications_through_the_queue_and_forwarder_end_ready_in_d1_after_a_503(
    d1_fleet: D1Fleet, d1_api: D1Api, forwarding: Forwarding, h264_mp4: Path
) -> None:
    # given two uploads, and a broker outage that makes the webhook answer 503
    bodies = [d1_fleet.upload(h264_mp4, f"uploads/queued-{n}.mp4") for n in (1, 2)]
    task_ids = [parse_r2(body).task_id for body in bodies]
    d1_fleet.broker.stop()
    # when R2's notifications go to the local queue that the forwarder consumes
    forwarding.send(*bodies)
    # then the Worker's batch is refused with 503 and retried with a delay
    forwarding.wait_log(forwarding.serve_log, REFUSED)
    forwarding.wait_log(forwarding.forwarder_log, "not accepted (HTTP 503); retrying in 1 s")
    d1_fleet.broker.start()
    # and once the broker is back the retried batch is accepted, in one POST for both
    rows = [d1_fleet.wait(task_id) for task_id in task_ids]
    assert [row.status for row in rows] == ["completed", "completed"]
    assert forwarding.count(ACCEPTED) == 1
    # and the videos and task rows read back from D1 are ready, with the poster key
    for row in rows:
        [video] = d1_api.wait_row(
            "SELECT * FROM videos WHERE id = ?",
            row.video_id,
            until=lambda found: bool(found) and found[0]["status"] == "ready",
        )
        [task] = d1_api.wait_row(
            "SELECT * FROM video_processing_tasks WHERE id = ?",
            row.id,
            until=lambda found: bool(found) and found[0]["status"] == "completed",
        )
        poster = _poster(d1_fleet, row.video_id)
        assert video["status"] == "ready"
        assert video["thumbnail_url"] == poster
        assert poster in d1_fleet.keys("thumbnails/")
        assert task["video_id"] == row.video_id


def _poster(fleet: D1Fleet, video_id: str) -> str:
    with fleet.engine.connect() as conn:
        return str(
            conn.execute(
                sa.select(videos.c.thumbnail_url).where(videos.c.id == video_id)
            ).scalar_one()
        )


def test_wrangler_builds_the_forwarder_from_wrangler_toml_offline(tmp_path: Path) -> None:
    # when wrangler itself builds the Worker from the deploy folder, without an account
    done = workerd.wrangler("deploy", "--dry-run", "--outdir", str(tmp_path), cwd=DEPLOY)
    # then the configuration is accepted and the bundle holds the forwarder
    assert done.returncode == 0, done.stderr + done.stdout
    assert "--dry-run: exiting now." in done.stdout
    assert "env.INGEST_URL" in done.stdout
    assert "env.RETRY_BASE_DELAY_S" in done.stdout
    assert "videofleet forwarder" in (tmp_path / "index.js").read_text()
