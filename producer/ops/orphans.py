"""Orphaned multipart uploads: started in the bucket, unknown to any ``videos`` row.

The upload API creates a multipart upload and then its row; if the row cannot be written it
aborts the upload at once, but a crash between the two leaves an upload that nothing can
complete or abort, and an incomplete multipart upload is billed storage. ``videofleet recover``
therefore lists the multipart uploads under ``uploads/`` and aborts those that

- no ``videos`` row names (``videos.upload_id``), and
- started more than ``RECOVERY_ORPHAN_MULTIPART_AFTER_S`` ago (a day by default), so that an
  upload whose row is being written, or a tool uploading to the bucket directly, is left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy.engine import Engine

from producer.uploads.policy import UPLOADS_PREFIX
from schema.errors import StorageUnavailable
from schema.lifecycle import now_ms
from schema.tables import videos

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Orphan:
    """A multipart upload no row knows, as the store lists it."""

    key: str
    upload_id: str
    initiated_ms: int


def find_orphans(
    engine: Engine, s3: S3Client, *, bucket: str, older_than_s: int, now: int | None = None
) -> list[Orphan]:
    """The multipart uploads under ``uploads/`` older than ``older_than_s`` that no row names.

    Raises:
        StorageUnavailable: the uploads could not be listed.
    """
    cutoff = (now_ms() if now is None else now) - older_than_s * 1000
    candidates = [u for u in _multipart_uploads(s3, bucket) if u.initiated_ms <= cutoff]
    if not candidates:
        return []
    with engine.connect() as conn:
        known = set(
            conn.execute(
                sa.select(videos.c.upload_id).where(
                    videos.c.upload_id.in_([u.upload_id for u in candidates])
                )
            ).scalars()
        )
    return [u for u in candidates if u.upload_id not in known]


def abort_orphans(engine: Engine, s3: S3Client, *, bucket: str, older_than_s: int) -> list[Orphan]:
    """Abort every orphan ``find_orphans`` finds; return them.

    Raises:
        StorageUnavailable: listing or an abort failed (those aborted so far stay aborted).
    """
    orphans = find_orphans(engine, s3, bucket=bucket, older_than_s=older_than_s)
    for orphan in orphans:
        try:
            s3.abort_multipart_upload(Bucket=bucket, Key=orphan.key, UploadId=orphan.upload_id)
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnavailable(
                f"storage error aborting {orphan.key}: {exc}", video_key=orphan.key
            ) from exc
        logger.warning(
            "Multipart upload %s of %s: no video row knows it; aborted",
            orphan.upload_id,
            orphan.key,
        )
    return orphans


def _multipart_uploads(s3: S3Client, bucket: str) -> Iterator[Orphan]:
    markers: dict[str, Any] = {}
    while True:
        try:
            page = s3.list_multipart_uploads(Bucket=bucket, Prefix=UPLOADS_PREFIX, **markers)
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnavailable(
                f"storage error listing multipart uploads of {bucket}: {exc}"
            ) from exc
        for upload in page.get("Uploads", []):
            initiated = int(upload["Initiated"].timestamp() * 1000)
            yield Orphan(upload["Key"], upload["UploadId"], initiated)
        if not page.get("IsTruncated"):
            return
        markers = {
            "KeyMarker": page["NextKeyMarker"],
            "UploadIdMarker": page["NextUploadIdMarker"],
        }
