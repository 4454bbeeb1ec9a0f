"""Ingest never loses a row: a publish that fails leaves it publishable by the next delivery."""

from __future__ import annotations

from pathlib import Path

import pytest

from producer.events.ingest import Result, ingest
from producer.events.publish import ChainPublisher
from producer.events.sources.r2 import parse_r2
from schema.errors import BrokerUnavailable
from tests.integration.conftest import Fleet

pytestmark = pytest.mark.integration


def test_row_whose_publish_failed_is_published_by_the_next_delivery(
    fleet: Fleet, h264_mp4: Path
) -> None:
    # given a notification that arrives while the broker is unreachable
    body = fleet.upload(h264_mp4, "uploads/broker-down.mp4")
    down = ChainPublisher(fleet.settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"}))
    with down, pytest.raises(BrokerUnavailable):
        ingest(fleet.engine, down, [parse_r2(body)])
    # then the row is committed, pending and unclaimed
    [row] = fleet.rows()
    assert (row.status, row.workflow_id) == ("pending", None)
    # when the same notification is delivered again with the broker back
    [outcome] = fleet.deliver(body)
    # then it is published and processed
    assert outcome.result is Result.PUBLISHED
    assert fleet.wait(row.id).status == "completed"
