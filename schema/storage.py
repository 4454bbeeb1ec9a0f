"""The S3/R2 client both sides use, built one way for R2, MinIO and the local endpoint alike."""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from schema.errors import ObjectMissing, StorageUnavailable, VideofleetError
from schema.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchBucket"})


def make_s3_client(settings: Settings) -> S3Client:
    """Create a boto3 S3 client for the configured endpoint.

    R2 rejects the checksums boto3 >= 1.36 sends by default, so checksums are only computed and
    validated when an operation requires them; the same setting works against moto and MinIO.
    Every request is retried by botocore (``S3_RETRY_MODE``, ``S3_MAX_ATTEMPTS`` attempts):
    throttling (S3's ``SlowDown``, 429), 5xx, resets and timeouts, with exponential backoff
    and full jitter; "adaptive" also slows the client down while the store throttles.
    """
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        connect_timeout=settings.s3_connect_timeout_s,
        read_timeout=settings.s3_read_timeout_s,
        # botocore's "max_attempts" counts retries; "total_max_attempts" counts requests.
        retries={"total_max_attempts": settings.s3_max_attempts, "mode": settings.s3_retry_mode},
    )
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=settings.s3_secret_access_key.get_secret_value(),
        config=config,
    )


def storage_error(exc: BotoCoreError | ClientError, *, video_key: str) -> VideofleetError:
    """Classify a boto3 failure: a missing object is permanent, anything else may pass."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _MISSING_CODES:
            return ObjectMissing(f"object {video_key} does not exist", video_key=video_key)
    return StorageUnavailable(f"storage error for {video_key}: {exc}", video_key=video_key)
