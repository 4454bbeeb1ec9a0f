"""S3 answering ``503 SlowDown`` to 30 % of requests: every step completes, no step is lost.

A fault proxy sits between the worker and moto; the producer uploads straight to moto. Every
storage request the worker makes (boto3's HEAD and PUTs, the ranged reads of the probe and the
thumbnail step) must be retried on its own: a thumbnail step makes a dozen requests, so without
per-request retries nearly every attempt of it fails and the task fails after its retries; and a
read that failed on storage must never make a valid file look unreadable.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.fleet import S3Server
from tests.integration.outages import FaultProxy, own_fleet

pytestmark = pytest.mark.integration

VIDEOS = 20
SLOWDOWN_FRACTION = 0.3


def test_thirty_percent_slowdown_answers_cost_retries_not_tasks(
    s3_server: S3Server, h264_mp4: Path, tmp_path: Path
) -> None:
    # given a store that answers 503 SlowDown to 30 % of the worker's requests
    with (
        FaultProxy(s3_server.port, fraction=SLOWDOWN_FRACTION, seed=7) as proxy,
        own_fleet(
            tmp_path,
            database_url=f"sqlite:///{tmp_path}/throttled.db",
            s3_url=proxy.url,
            bucket="videofleet-throttled",
        ) as fleet,
    ):
        # when 20 videos are processed through it
        keys = [f"uploads/throttled-{n:02d}.mp4" for n in range(VIDEOS)]
        fleet.upload_and_deliver(h264_mp4, keys, s3_url=s3_server.url)
        counts = fleet.wait_ended(VIDEOS, timeout_s=140)
        rows = fleet.rows()
    # then every one completed, though the proxy refused a good share of the requests
    log = fleet.log.read_text()
    assert counts == {"completed": VIDEOS}, [r.error_message for r in rows if r.error_message]
    assert proxy.refused >= 0.2 * (proxy.refused + proxy.forwarded)
    assert proxy.refused > VIDEOS
    # and a step retry is rare: the requests were retried, not the steps
    retries = sum(r.retry_count for r in rows)
    print(f"proxy: {proxy.refused} refused, {proxy.forwarded} forwarded; {retries} step retries")
    assert retries == len(re.findall(r" will retry \(", log))
    assert retries <= VIDEOS // 4
