"""Redis (with AOF) down for 15 s mid-run: every task completes, none fails.

A step that returns during the outage cannot hand the next step of its chain to the broker.
Celery retries that publish with the worker's ``task_publish_retry_policy``
(``BROKER_PUBLISH_RETRY_S``), and a hand-off that still fails puts the step back in the queue
instead of failing the task.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from schema.status import Step
from tests.fleet import S3Server
from tests.integration.outages import PrivateRedis, own_fleet

pytestmark = pytest.mark.integration

VIDEOS = 10
OUTAGE_S = 15


@pytest.mark.parametrize(
    ("publish_retry_s", "evidence"),
    [
        # The hand-off waits the outage out.
        ("60", "Retrying refused callback publish"),
        # The hand-off gives up first: the step goes back to the queue and runs again.
        ("1", "requeued: next step not published"),
    ],
    ids=["hand-off-waits", "hand-off-gives-up"],
)
def test_broker_down_for_15_s_mid_run_fails_no_task(
    s3_server: S3Server, long_gop_mp4: Path, tmp_path: Path, publish_retry_s: str, evidence: str
) -> None:
    broker = PrivateRedis(tmp_path)
    broker.start()
    try:
        with own_fleet(
            tmp_path,
            broker_url=broker.url,
            database_url=f"sqlite:///{tmp_path}/broker-outage.db",
            s3_url=s3_server.url,
            bucket="videofleet-broker-outage",
            # 40 thumbnails a video keep each thumbnail step in flight long enough that some
            # are still running when the broker goes down (the step's speed is not under test).
            env={"BROKER_PUBLISH_RETRY_S": publish_retry_s, "THUMBNAIL_COUNT": "40"},
        ) as fleet:
            # given videos whose thumbnail steps are running
            keys = [f"uploads/broker-outage-{n:02d}.mp4" for n in range(VIDEOS)]
            fleet.upload_and_deliver(long_gop_mp4, keys, s3_url=s3_server.url)
            deadline = time.monotonic() + 60
            while not any(
                r.status == "processing" and r.step == Step.THUMBNAILS.value for r in fleet.rows()
            ):
                assert time.monotonic() < deadline, fleet.log.read_text()[-3000:]
                time.sleep(0.02)
            # when the broker goes down for 15 s while they finish
            broker.stop()
            time.sleep(OUTAGE_S)
            broker.start()
            counts = fleet.wait_ended(VIDEOS, timeout_s=140)
            rows = fleet.rows()
        log = fleet.log.read_text()
    finally:
        broker.stop()
    # then every task completed
    assert counts == {"completed": VIDEOS}, [r.error_message for r in rows if r.error_message]
    # and some step did hand off into the outage
    assert evidence in log
