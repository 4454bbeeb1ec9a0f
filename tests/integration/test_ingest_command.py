"""`videofleet ingest` takes a body of any source from a file or stdin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from producer.cli import main
from schema.settings import Settings
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
