"""A seekable, read-only file over bounded HTTP range requests, with a small block cache.

ffmpeg's own HTTP reader asks for open-ended ranges (``bytes=N-``): the server keeps sending
until the client hangs up, so a seek-heavy read is billed for far more than it consumed. This
reader asks only for ``bytes=N-M``, caches what it fetched in fixed blocks, and grows the next
request only while reads stay sequential (an index, a large keyframe). PyAV reads through it,
so every byte the decoder sees was requested on purpose, and ``requests``/``bytes_read`` say
exactly what the storage endpoint sent.
"""

from __future__ import annotations

import io
import logging
import time
from collections import OrderedDict

import urllib3
from urllib3.exceptions import HTTPError

from schema.errors import ObjectMissing, StorageUnavailable

logger = logging.getLogger(__name__)

DEFAULT_BLOCK_BYTES = 128 * 1024
DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024
DEFAULT_CACHE_BYTES = 8 * 1024 * 1024
_RETRYABLE_STATUSES = frozenset({403, 408, 429, 500, 502, 503, 504})


class RangeReader(io.RawIOBase):
    """Read the object behind ``url`` (a presigned GET URL) with bounded range requests.

    Memory is bounded by ``cache_bytes`` whatever the object's size. ``deadline`` (a
    ``time.monotonic()`` value) stops a read that runs past the step's budget; a Celery soft
    time limit raised inside a read propagates through PyAV like any Python exception.
    """

    def __init__(
        self,
        url: str,
        *,
        video_key: str,
        pool: urllib3.PoolManager,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        timeout_s: float = 30.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__()
        self._url = url
        self._key = video_key
        self._pool = pool
        self._block = block_bytes
        self._max_request = max(max_request_bytes, block_bytes)
        self._cache_bytes = max(cache_bytes, 2 * self._max_request)
        self._timeout = urllib3.Timeout(connect=min(timeout_s, 10.0), read=timeout_s)
        self._deadline = deadline
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._pos = 0
        self._size: int | None = None
        self._next_sequential = -1
        self._run_bytes = block_bytes
        self.requests = 0
        self.bytes_read = 0

    @property
    def size(self) -> int:
        """The object's size, learnt from the first response's ``Content-Range``."""
        if self._size is None:
            self._fetch(0)
            self._next_sequential = -1
        assert self._size is not None
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._pos = offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        elif whence == io.SEEK_END:
            self._pos = self.size + offset
        else:
            raise ValueError(f"unsupported whence {whence}")
        if self._pos < 0:
            raise ValueError("negative seek position")
        return self._pos

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        """Copy up to ``len(buffer)`` bytes from the current position, fetching on a miss."""
        view = memoryview(buffer).cast("B")
        copied = 0
        while copied < len(view):
            if self._size is not None and self._pos >= self._size:
                break
            chunk = self._cached(self._pos, len(view) - copied)
            if not chunk:
                chunk = self._fetch(self._pos)[: len(view) - copied]
                if not chunk:
                    break
            view[copied : copied + len(chunk)] = chunk
            copied += len(chunk)
            self._pos += len(chunk)
        return copied

    def _cached(self, pos: int, limit: int) -> bytes:
        for start, data in reversed(self._cache.items()):
            if start <= pos < start + len(data):
                self._cache.move_to_end(start)
                return data[pos - start : pos - start + limit]
        return b""

    def _fetch(self, pos: int) -> bytes:
        """Fetch from ``pos``: one block after a jump, a doubling run while reads are sequential.

        Requests start exactly where the demuxer reads (not at an aligned block), so a keyframe
        smaller than a block costs one request.
        """
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise StorageUnavailable(
                f"reading {self._key} ran past the step's time budget", video_key=self._key
            )
        if pos == self._next_sequential:
            self._run_bytes = min(self._run_bytes * 2, self._max_request)
        else:
            self._run_bytes = self._block
        end = pos + self._run_bytes - 1
        if self._size is not None:
            end = min(end, self._size - 1)
        # Stop where cached bytes begin: nothing is fetched twice while it is still cached.
        following = [start for start in self._cache if start > pos]
        if following:
            end = min(end, min(following) - 1)
        data = self._get(pos, end)
        self._cache[pos] = data
        while (
            sum(len(d) for d in self._cache.values()) > self._cache_bytes and len(self._cache) > 1
        ):
            self._cache.popitem(last=False)
        self._next_sequential = pos + len(data)
        return data

    def _get(self, start: int, end: int) -> bytes:
        try:
            response = self._pool.request(
                "GET",
                self._url,
                headers={"Range": f"bytes={start}-{end}"},
                timeout=self._timeout,
                retries=False,
                preload_content=True,
            )
        except HTTPError as exc:
            raise StorageUnavailable(
                f"reading {self._key} failed: {exc.__class__.__name__}", video_key=self._key
            ) from exc
        self.requests += 1
        if response.status == 404:
            raise ObjectMissing(
                f"object {self._key} disappeared while being read", video_key=self._key
            )
        if response.status == 416:
            return b""
        if response.status in _RETRYABLE_STATUSES or response.status not in (200, 206):
            raise StorageUnavailable(
                f"reading {self._key} failed: HTTP {response.status}", video_key=self._key
            )
        data = bytes(response.data)
        self.bytes_read += len(data)
        if response.status == 200:
            # A server that ignores Range sends everything: keep only the asked-for part.
            self._size = len(data)
            return data[start : end + 1]
        self._size = _total_size(response.headers.get("Content-Range"), self._size)
        return data


def _total_size(content_range: str | None, known: int | None) -> int | None:
    """The ``/total`` part of ``Content-Range: bytes a-b/total``."""
    if not content_range or "/" not in content_range:
        return known
    total = content_range.rsplit("/", 1)[1].strip()
    return int(total) if total.isdigit() else known
