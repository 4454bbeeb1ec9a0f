"""How big each range request is: what the demuxer needs, not a fixed block past it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import urllib3

from schema.errors import Superseded
from workers.media.rangereader import RangeSource

SIZE = 10_000_000
BLOCK = 128 * 1024


@dataclass
class _Response:
    status: int
    data: bytes
    headers: dict[str, str]
    retries: Any = None


@dataclass
class _Store:
    """A pool that answers ranged GETs on a ``size``-byte object and records each range.

    ``etag`` names the version it serves (S3 quotes it); change it to overwrite the object.
    """

    ranges: list[tuple[int, int]] = field(default_factory=list)
    etag: str = '"0123abcd"'
    size: int = SIZE

    def request(self, method: str, url: str, *, headers: dict[str, str], **_: Any) -> _Response:
        start, end = (int(v) for v in headers["Range"].removeprefix("bytes=").split("-"))
        if start >= self.size:
            return _Response(416, b"", {"Content-Range": f"bytes */{self.size}"})
        end = min(end, self.size - 1)
        self.ranges.append((start, end + 1 - start))
        body = bytes(end + 1 - start)
        headers = {"Content-Range": f"bytes {start}-{end}/{self.size}", "ETag": self.etag}
        return _Response(206, body, headers)


def _source(store: _Store, *, etag: str | None = None) -> RangeSource:
    pool: urllib3.PoolManager = store  # type: ignore[assignment]
    return RangeSource("http://store/o", video_key="k", pool=pool, block_bytes=BLOCK, etag=etag)


def _reader() -> tuple[_Store, Any]:
    store = _Store()
    return store, _source(store).cursor()


def test_a_read_returns_what_is_cached_and_fetches_only_on_a_miss() -> None:
    store, reader = _reader()
    assert len(reader.read(16_384)) == 16_384
    reader.seek(BLOCK - 100)
    # the cached block's last 100 bytes, not a fetch for the rest of the buffer
    assert len(reader.read(16_384)) == 100
    assert store.ranges == [(0, BLOCK)]


def test_a_jump_fetches_the_expected_keyframe_and_nothing_past_it() -> None:
    store, reader = _reader()
    reader.read(1024)
    reader.expect(59_000)
    reader.seek(5_000_000)
    reader.read(16_384)  # the demuxer's buffer fill
    reader.seek(7_000_000)
    reader.read(80_000)  # a keyframe larger than expected, read directly
    assert store.ranges[1:] == [(5_000_000, 59_000), (7_000_000, 80_000)]


def test_reads_that_go_on_double_each_request_from_at_least_a_block() -> None:
    store, reader = _reader()
    reader.read(1024)
    reader.expect(20_000)
    reader.seek(5_000_000)
    while reader.tell() < 5_000_000 + 20_000 + 3 * BLOCK:
        reader.read(16_384)
    assert [n for _, n in store.ranges[1:]] == [20_000, BLOCK, 2 * BLOCK]


def test_an_index_read_ahead_is_fetched_in_one_request() -> None:
    store, reader = _reader()
    reader.read(1024)
    reader.read_ahead(9_400_000, SIZE)
    reader.seek(9_400_000)
    while reader.read(16_384):
        pass
    assert store.ranges[1:] == [(9_400_000, 600_000)]


def test_the_first_response_tells_the_size_and_fixes_the_version() -> None:
    store = _Store()
    source = _source(store)
    assert source.total_size() == SIZE
    assert source.etag == "0123abcd"
    reader = source.cursor()
    reader.seek(5_000_000)
    store.etag = '"ffff0000"'  # the key is overwritten between two range requests
    with pytest.raises(Superseded, match="ETag ffff0000, this task was for 0123abcd"):
        reader.read(16_384)


def test_a_version_named_by_the_task_is_checked_on_the_first_response() -> None:
    store = _Store()
    source = _source(store, etag='"0123ABCD"')  # as a notification may spell it
    assert source.total_size() == SIZE
    with pytest.raises(Superseded):
        _source(store, etag="99999999").total_size()


def test_an_empty_object_has_size_zero_from_its_416() -> None:
    source = _source(_Store(size=0))
    assert source.total_size() == 0
    assert source.cursor().read(16_384) == b""
