"""Uploads straight to the bucket: the ``videos`` row and the presigned requests for it.

The browser never sends video bytes through videofleet: it gets presigned URLs and PUTs to R2
(or any S3 store) itself. Each upload has a ``videos`` row from the start (status
``uploading``, its owner, its key), so the workflow's validate step finds it and the key of a
multipart upload is always read from the row, never taken from the client.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from producer.uploads.policy import (
    PartPlan,
    check_completed_parts,
    check_filename,
    check_size,
    content_type_for,
    object_key,
    plan_parts,
    upload_types,
)
from schema.errors import StorageUnavailable, UploadRejected
from schema.lifecycle import now_ms
from schema.settings import Settings
from schema.status import VideoStatus
from schema.tables import videos

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

_NO_UPLOAD_CODES = frozenset({"NoSuchUpload", "404", "NotFound"})


class UploadNotFound(UploadRejected):
    """Raised when an upload or video does not exist or belongs to someone else."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="not_found")


@dataclass(frozen=True, slots=True)
class NewUpload:
    """What a client needs to PUT its file: where, under which key, until when."""

    video_id: str
    key: str
    content_type: str
    upload_url: str
    expires_at_ms: int


@dataclass(frozen=True, slots=True)
class NewMultipart:
    """A created multipart upload and how to cut the file into parts."""

    video_id: str
    key: str
    content_type: str
    upload_id: str
    plan: PartPlan
    expires_at_ms: int


@dataclass(frozen=True, slots=True)
class MultipartUpload:
    """A multipart upload as its ``videos`` row records it."""

    video_id: str
    key: str
    upload_id: str
    plan: PartPlan


class Uploads:
    """The upload operations over one database and one S3 client."""

    def __init__(self, settings: Settings, engine: Engine, s3: S3Client) -> None:
        self.settings = settings
        self.engine = engine
        self.s3 = s3
        self.bucket = settings.s3_bucket

    def start_single(self, *, owner: str, filename: str, content_type: str, size: int) -> NewUpload:
        """Record the video and presign one PUT bound to its content type and length.

        Raises:
            UploadRejected: the file is not an allowed video, is empty, too large, or large
                enough to need multipart.
        """
        name, mime = self.validate(
            filename=filename, content_type=content_type, size=size, single=True
        )
        key = object_key(name)
        expires_s = self.settings.presign_expiry_s
        url = self.s3.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": key, "ContentType": mime, "ContentLength": size},
            ExpiresIn=expires_s,
        )
        video_id = self._insert_video(owner=owner, key=key, name=name, mime=mime, size=size)
        logger.info("Video %s: single upload of %d bytes to %s for %s", video_id, size, key, owner)
        return NewUpload(video_id, key, mime, url, now_ms() + expires_s * 1000)

    def start_multipart(
        self, *, owner: str, filename: str, content_type: str, size: int
    ) -> NewMultipart:
        """Record the video, create the multipart upload and plan its parts.

        Raises:
            UploadRejected: not an allowed video, empty or too large.
            StorageUnavailable: the store refused to create the upload.
        """
        name, mime = self.validate(
            filename=filename, content_type=content_type, size=size, single=False
        )
        plan = plan_parts(size, preferred_part_bytes=self.settings.multipart_part_size_bytes)
        key = object_key(name)
        with _storage(key):
            upload_id = self.s3.create_multipart_upload(
                Bucket=self.bucket, Key=key, ContentType=mime
            )["UploadId"]
        try:
            video_id = self._insert_video(
                owner=owner, key=key, name=name, mime=mime, size=size, upload_id=upload_id
            )
        except SQLAlchemyError:
            # Without its row nothing could ever complete or abort the upload, and an
            # incomplete multipart upload is billed storage: abort it now (``videofleet
            # recover`` aborts any that a crash right here leaves behind).
            with _storage(key):
                self.s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise
        logger.info(
            "Video %s: multipart upload %s of %d bytes in %d parts to %s for %s",
            video_id,
            upload_id,
            size,
            plan.part_count,
            key,
            owner,
        )
        expires_at = now_ms() + self.settings.presign_expiry_s * 1000
        return NewMultipart(video_id, key, mime, upload_id, plan, expires_at)

    def find_multipart(
        self, upload_id: str, *, owner: str, key: str | None = None
    ) -> MultipartUpload:
        """The caller's multipart upload ``upload_id``, still uploading.

        Raises:
            UploadNotFound: no such upload, someone else's, already finished, or ``key`` is not
                its key.
        """
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(videos).where(videos.c.upload_id == upload_id)
            ).one_or_none()
        if (
            row is None
            or row.owner != owner
            or row.status != VideoStatus.UPLOADING.value
            or (key is not None and key != row.r2_key)
        ):
            raise UploadNotFound(f"no multipart upload {upload_id} of yours is in progress")
        plan = plan_parts(
            row.size_bytes, preferred_part_bytes=self.settings.multipart_part_size_bytes
        )
        return MultipartUpload(row.id, row.r2_key, upload_id, plan)

    def part_urls(self, upload: MultipartUpload, numbers: list[int]) -> dict[int, str]:
        """Presigned UploadPart URLs, each bound to its part's planned length."""
        return {
            number: self.s3.generate_presigned_url(
                "upload_part",
                Params={
                    "Bucket": self.bucket,
                    "Key": upload.key,
                    "UploadId": upload.upload_id,
                    "PartNumber": number,
                    "ContentLength": upload.plan.part_length(number),
                },
                ExpiresIn=self.settings.presign_expiry_s,
            )
            for number in numbers
        }

    def uploaded_parts(self, upload: MultipartUpload) -> list[dict[str, Any]]:
        """The parts the store already has (ListParts), so an interrupted upload can resume."""
        parts: list[dict[str, Any]] = []
        marker = 0
        with _storage(upload.key):
            while True:
                page = self.s3.list_parts(
                    Bucket=self.bucket,
                    Key=upload.key,
                    UploadId=upload.upload_id,
                    PartNumberMarker=marker,
                )
                parts += [
                    {"partNumber": p["PartNumber"], "etag": p["ETag"], "size": p["Size"]}
                    for p in page.get("Parts", [])
                ]
                if not page.get("IsTruncated"):
                    return parts
                marker = int(page["NextPartNumberMarker"])

    def complete(self, upload: MultipartUpload, parts: list[tuple[int, str]]) -> str:
        """Complete the upload from its parts' ETags; return the object's ETag.

        Raises:
            UploadRejected: the parts are not exactly 1..N in order.
            UploadNotFound: the store no longer knows the upload.
            StorageUnavailable: the store failed.
        """
        check_completed_parts(upload.plan, [number for number, _ in parts])
        with _storage(upload.key):
            result = self.s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=upload.key,
                UploadId=upload.upload_id,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag} for n, etag in parts]},
            )
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(videos)
                .where(videos.c.id == upload.video_id)
                .values(upload_id=None, updated_at=now_ms())
            )
        logger.info("Video %s: multipart upload %s completed", upload.video_id, upload.upload_id)
        return str(result.get("ETag", "")).strip('"')

    def abort(self, upload: MultipartUpload) -> None:
        """Abort the upload and mark its video deleted."""
        with _storage(upload.key):
            self.s3.abort_multipart_upload(
                Bucket=self.bucket, Key=upload.key, UploadId=upload.upload_id
            )
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(videos)
                .where(videos.c.id == upload.video_id)
                .values(status=VideoStatus.DELETED.value, upload_id=None, updated_at=now_ms())
            )
        logger.info("Video %s: multipart upload %s aborted", upload.video_id, upload.upload_id)

    def validate(
        self, *, filename: str, content_type: str, size: int, single: bool
    ) -> tuple[str, str]:
        """Return the trimmed name and canonical MIME type, or refuse the request.

        Called before the rate limits are counted, so a refused request costs nothing.

        Raises:
            UploadRejected: bad name, not a video, empty, too large, or (``single``) too large
                for one PUT.
        """
        name = check_filename(filename)
        types = upload_types(self.settings.ingest_extensions)
        mime = content_type_for(name, content_type, types=types)
        check_size(
            size,
            max_bytes=self.settings.upload_max_bytes,
            single_max_bytes=self.settings.multipart_threshold_bytes if single else None,
        )
        return name, mime

    def _insert_video(
        self,
        *,
        owner: str,
        key: str,
        name: str,
        mime: str,
        size: int,
        upload_id: str | None = None,
    ) -> str:
        video_id = str(uuid.uuid4())
        now = now_ms()
        with self.engine.begin() as conn:
            conn.execute(
                videos.insert().values(
                    id=video_id,
                    r2_key=key,
                    filename=name,
                    content_type=mime,
                    size_bytes=size,
                    status=VideoStatus.UPLOADING.value,
                    owner=owner,
                    upload_id=upload_id,
                    created_at=now,
                    updated_at=now,
                )
            )
        return video_id


@contextmanager
def _storage(key: str) -> Iterator[None]:
    """Map boto3 failures: an unknown upload is ``UploadNotFound``, the rest is transient."""
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _NO_UPLOAD_CODES:
            raise UploadNotFound(f"the store has no such upload for {key}") from exc
        raise StorageUnavailable(f"storage error for {key}: {exc}", video_key=key) from exc
    except BotoCoreError as exc:
        raise StorageUnavailable(f"storage error for {key}: {exc}", video_key=key) from exc
