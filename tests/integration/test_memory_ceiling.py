"""A pool process that ends a task above ``WORKER_MAX_MEMORY_PER_CHILD_KIB`` is replaced."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from tests.fleet import S3Server
from tests.integration.conftest import RedisServer
from tests.integration.outages import own_fleet

pytestmark = pytest.mark.integration


def test_pool_process_over_the_memory_ceiling_is_replaced_after_its_task(
    s3_server: S3Server, own_redis: RedisServer, h264_mp4: Path, tmp_path: Path
) -> None:
    # given a worker whose ceiling every pool process exceeds (1 KiB)
    with own_fleet(
        tmp_path,
        broker_url=own_redis.url,
        database_url=f"sqlite:///{tmp_path}/ceiling.db",
        s3_url=s3_server.url,
        bucket="videofleet-ceiling",
        env={"WORKER_MAX_MEMORY_PER_CHILD_KIB": "1"},
        concurrency=1,
    ) as fleet:
        own_redis.client().flushdb()
        worker = psutil.Process(fleet.worker.pid)
        [before] = worker.children()
        # when it runs a video's three steps
        fleet.upload_and_deliver(h264_mp4, ["uploads/ceiling.mp4"], s3_url=s3_server.url)
        counts = fleet.wait_ended(1, timeout_s=90)
        [after] = worker.children()
    # then the video completed, and the process that ran it was replaced by a fresh one
    assert counts == {"completed": 1}
    assert after.pid != before.pid
