"""``videofleet recover`` aborts multipart uploads no video row knows, and only those."""

from __future__ import annotations

import uuid

import pytest
from click.testing import CliRunner

from producer.cli import main
from schema.lifecycle import now_ms
from schema.status import VideoStatus
from schema.tables import videos
from tests.integration.conftest import BUCKET, Fleet

pytestmark = pytest.mark.integration


def _start_multipart(fleet: Fleet, key: str) -> str:
    return fleet.s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]


def _open_uploads(fleet: Fleet) -> set[str]:
    uploads = fleet.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
    return {u["UploadId"] for u in uploads}


def test_recover_aborts_orphaned_multipart_uploads_and_keeps_the_known_ones(fleet: Fleet) -> None:
    # given an upload with its videos row, one without (a crash between the two), and one
    # outside uploads/ that another tool is writing
    known = _start_multipart(fleet, "uploads/known.mp4")
    orphan = _start_multipart(fleet, "uploads/orphan.mp4")
    foreign = _start_multipart(fleet, "backups/db.tar")
    with fleet.engine.begin() as conn:
        conn.execute(
            videos.insert().values(
                id=str(uuid.uuid4()),
                r2_key="uploads/known.mp4",
                filename="known.mp4",
                content_type="video/mp4",
                size_bytes=60 * 1024 * 1024,
                status=VideoStatus.UPLOADING.value,
                owner="someone",
                upload_id=known,
                created_at=now_ms(),
                updated_at=now_ms(),
            )
        )
    # when recover runs while they are younger than RECOVERY_ORPHAN_MULTIPART_AFTER_S (moto
    # lists every multipart upload as initiated in November 2010: the grace here is 40 years)
    patient = {**fleet.env, "RECOVERY_ORPHAN_MULTIPART_AFTER_S": str(40 * 365 * 86_400)}
    young = CliRunner().invoke(main, ["recover", "--once"], env=patient)
    # then nothing is aborted
    assert young.exit_code == 0, young.output
    assert _open_uploads(fleet) == {known, orphan, foreign}
    # when it runs with no grace period
    env = {**fleet.env, "RECOVERY_ORPHAN_MULTIPART_AFTER_S": "0"}
    result = CliRunner().invoke(main, ["recover", "--once"], env=env)
    # then the orphan is aborted and reported, the others are left alone
    assert result.exit_code == 0, result.output
    assert f"aborted      multipart upload {orphan}  uploads/orphan.mp4  (orphan)" in result.stdout
    assert _open_uploads(fleet) == {known, foreign}
