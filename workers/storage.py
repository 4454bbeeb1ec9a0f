"""The worker's view of the bucket: sign a URL for the range reader, store derived objects."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import urllib3
from botocore.exceptions import BotoCoreError, ClientError

from schema.storage import storage_error

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

THUMBNAIL_CONTENT_TYPE = "image/jpeg"
# Thumbnails and storyboards live under content-versioned keys: any cache may keep them a year.
IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"


def presigned_get(s3: S3Client, bucket: str, key: str, *, expires_s: int) -> str:
    """Sign a GET URL locally (no request); ffmpeg reads through it with range requests."""
    return s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_s
    )


_pools: dict[int, urllib3.PoolManager] = {}


def http_pool() -> urllib3.PoolManager:
    """This process's HTTP connection pool for ranged reads of presigned URLs.

    Keyed by pid: a pool (and its sockets) must not cross a prefork ``fork()``.
    """
    pid = os.getpid()
    if pid not in _pools:
        _pools.clear()
        _pools[pid] = urllib3.PoolManager(maxsize=4)
    return _pools[pid]


def upload_bytes(
    s3: S3Client, bucket: str, key: str, data: bytes, *, content_type: str, cache_control: str
) -> None:
    """Upload a small in-memory object in one PUT, with the ``Cache-Control`` it is served with."""
    try:
        s3.put_object(
            Bucket=bucket, Key=key, Body=data, ContentType=content_type, CacheControl=cache_control
        )
    except (BotoCoreError, ClientError) as exc:
        raise storage_error(exc, video_key=key) from exc


UPLOAD_THREADS = 8


def upload_many(s3: S3Client, bucket: str, objects: dict[str, tuple[bytes, str]]) -> None:
    """Upload small derived objects (key -> (data, content type)) in parallel PUTs.

    A dozen sequential PUTs cost a dozen round trips; boto3 clients are thread-safe. The keys
    are content-versioned (``schema.derived_keys``), so the objects are written as immutable.

    Raises:
        StorageUnavailable: a PUT failed (the first failure is raised).
    """
    with ThreadPoolExecutor(max_workers=min(UPLOAD_THREADS, len(objects) or 1)) as pool:
        futures = [
            pool.submit(
                upload_bytes,
                s3,
                bucket,
                key,
                data,
                content_type=content_type,
                cache_control=IMMUTABLE_CACHE_CONTROL,
            )
            for key, (data, content_type) in objects.items()
        ]
        for future in futures:
            future.result()
