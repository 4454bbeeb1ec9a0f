"""`videofleet ingest` takes a body of any source from a file or stdin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from producer.cli import main
from schema.settings import Settings
from schema.tables import rejected_events
from tests.factories import documented_body, minio_body, s3_body
from tests.integration.conftest import BUCKET, Fleet

pytestmark = pytest.mark.integration


def test_ingest_command_accepts_s3_and_minio_bodies_and_reports_each_outcome(
    fleet: Fleet, h264_mp4: Path
) -> None:
    # given an upload and its S3 and MinIO notifications, plus the S3 test event and a .txt
    r2 = fleet.upload(h264_mp4, "uploads/from cli.mp4")
    size, etag = r2["object"]["size"], r2["object"]["eTag"]
    bodies = [
        s3_body(bucket=BUCKET, key="uploads/from cli.mp4", size=size, etag=etag),
        minio_body(bucket=BUCKET, key="uploads/from cli.mp4", size=size, etag=etag),
        documented_body("s3-test-event.json"),
        s3_body(bucket=BUCKET, key="uploads/readme.txt"),
    ]
    # when they are piped into `videofleet ingest`
    result = CliRunner().invoke(main, ["ingest"], input=json.dumps(bodies), env=fleet.env)
    # then each event is reported, and the upload is one task that completes
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["published", "duplicate", "ignored"]
    assert lines[2].endswith(f"(extension not one of {', '.join(Settings().ingest_extensions)})")
    assert fleet.wait(lines[0].split()[1]).status == "completed"


def test_ingest_command_refuses_a_malformed_body_with_the_reason(fleet: Fleet) -> None:
    body = s3_body(bucket=BUCKET, key="uploads/a.mp4", event_name="ObjectRestore:Post")
    result = CliRunner().invoke(main, ["ingest"], input=json.dumps(body), env=fleet.env)
    assert result.exit_code == 1
    assert "not an event notification: record 0: unknown event name 'ObjectRestore:Post'" in (
        result.output
    )
    assert fleet.rows() == []


def _rejections(fleet: Fleet) -> list[Any]:
    with fleet.engine.connect() as conn:
        return list(conn.execute(sa.select(rejected_events)).all())


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("null", "a notification is a JSON object, got null"),
        (json.dumps(s3_body(bucket=BUCKET, key="a.mp4", size=True)), "got a boolean"),
        (
            json.dumps(s3_body(bucket="someone-elses-bucket", key="uploads/a.mp4")),
            "bucket 'someone-elses-bucket' is not served here",
        ),
        (json.dumps(s3_body(bucket=BUCKET, key="a.mp4", etag="made-up")), "not an entity tag"),
    ],
    ids=["null", "boolean-size", "foreign-bucket", "made-up-etag"],
)
def test_ingest_command_records_what_it_refuses_in_rejected_events(
    fleet: Fleet, body: str, reason: str
) -> None:
    # given no earlier rejections
    with fleet.engine.begin() as conn:
        conn.execute(rejected_events.delete())
    # when a body the fleet must refuse is piped into `videofleet ingest`
    result = CliRunner().invoke(main, ["ingest"], input=body, env=fleet.env)
    # then it says why, in the webhook's words, and the refusal is recorded like the webhook's
    assert result.exit_code == 1
    assert "not an event notification: " in result.output
    assert reason in result.output
    [rejection] = _rejections(fleet)
    assert (rejection.source, rejection.body) == ("cli", body)
    assert reason in rejection.reason
    assert fleet.rows() == []


def test_tasks_list_shows_the_bucket_when_more_than_one_is_served(
    fleet: Fleet, h264_mp4: Path
) -> None:
    [outcome] = fleet.deliver(fleet.upload(h264_mp4, "uploads/two-buckets.mp4"))
    fleet.wait(outcome.task_id)
    one = CliRunner().invoke(main, ["tasks", "list"], env=fleet.env)
    assert one.exit_code == 0, one.output
    assert one.stdout.split()[:3] == ["id", "key", "status"]
    two = CliRunner().invoke(
        main, ["tasks", "list"], env={**fleet.env, "INGEST_BUCKETS": f"{BUCKET},archive-bucket"}
    )
    assert two.exit_code == 0, two.output
    header, _rule, line = two.stdout.splitlines()[:3]
    assert header.split()[:3] == ["id", "bucket", "key"]
    assert line.split()[:3] == [outcome.task_id, BUCKET, "uploads/two-buckets.mp4"]


def test_poll_refuses_a_bucket_that_is_not_served(fleet: Fleet) -> None:
    result = CliRunner().invoke(main, ["poll", "--once", "--bucket", "other-bucket"], env=fleet.env)
    assert result.exit_code == 2
    assert "bucket 'other-bucket' is not served" in result.output
