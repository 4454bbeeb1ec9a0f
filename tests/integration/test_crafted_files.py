"""Crafted uploads that try to make a worker fetch URLs or read files: nothing is ever opened.

Each file names a canary: a TCP listener on loopback (any connection is a request the worker was
made to send) and a FIFO (any open of it for reading is a file the worker was made to read). The
files go through the real read path (moto over HTTP, the range reader, PyAV) in-process, and a
few through a real worker; in every case the canary stays silent, the file is refused as not a
video without retries, and the error names no internal address.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from producer.dev import samples
from schema.errors import NotAVideo
from tests.integration.conftest import Fleet
from tests.integration.media_bucket import Bucket

pytestmark = pytest.mark.integration


class Canary:
    """Counts connections to a loopback port and opens of a FIFO, until closed."""

    def __init__(self, directory: Path) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.fifo = directory / "canary.fifo"
        os.mkfifo(self.fifo)
        self.connections = 0
        self.file_opens = 0
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._watch_fifo, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def silent(self) -> bool:
        time.sleep(0.2)  # a request sent just before the check still lands
        return self.connections == 0 and self.file_opens == 0

    def close(self) -> None:
        self._stop.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            client.close()

    def _watch_fifo(self) -> None:
        # Opening a FIFO for writing without blocking succeeds only while a reader has it open.
        while not self._stop.is_set():
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.002)
                continue
            self.file_opens += 1
            os.close(fd)


@pytest.fixture
def canary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Canary]:
    # Relative names in a crafted file resolve against the working directory: put the FIFO there.
    monkeypatch.chdir(tmp_path)
    watcher = Canary(tmp_path)
    yield watcher
    watcher.close()


def _hls(segment: str, *, key_uri: str | None = None) -> bytes:
    key = f'#EXT-X-KEY:METHOD=AES-128,URI="{key_uri}"\n' if key_uri else ""
    return (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f"{key}#EXTINF:2.0,\n{segment}\n#EXT-X-ENDLIST\n"
    ).encode()


def _ffconcat(*paths: str) -> bytes:
    return ("ffconcat version 1.0\n" + "".join(f"file '{p}'\n" for p in paths)).encode()


CRAFTED: dict[str, Callable[[Canary], bytes]] = {
    "hls-absolute-segment": lambda c: _hls(f"{c.url}/segment0.ts"),
    "hls-relative-segment": lambda c: _hls("canary.fifo"),
    "hls-file-segment": lambda c: _hls(f"file://{c.fifo}"),
    "hls-key-uri": lambda c: _hls("canary.fifo", key_uri=f"{c.url}/key.bin"),
    "ffconcat-url": lambda c: _ffconcat(f"{c.url}/clip.mp4"),
    "ffconcat-absolute-path": lambda c: _ffconcat(str(c.fifo)),
    "ffconcat-relative-path": lambda c: _ffconcat("canary.fifo"),
    "dash-manifest": lambda c: (
        '<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static">'
        f'<Period><AdaptationSet><Representation id="1" bandwidth="1"><BaseURL>{c.url}/v.mp4'
        "</BaseURL></Representation></AdaptationSet></Period></MPD>"
    ).encode(),
}


def _forbidden_text(canary: Canary, bucket_url: str) -> list[str]:
    return ["127.0.0.1", str(canary.port), str(canary.fifo), bucket_url]


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_crafted_file_is_refused_without_any_request_or_file_read(
    bucket: Bucket, canary: Canary, name: str
) -> None:
    # given a crafted "video" in the bucket, under a name and with bytes that look harmless
    key = f"up/{name}.mp4"
    bucket.s3.put_object(Bucket="videofleet-test", Key=key, Body=CRAFTED[name](canary))
    # when the validate step's probe and the thumbnail step's decoder read it
    with pytest.raises(NotAVideo) as probed:
        bucket.probe(key)
    with pytest.raises(NotAVideo) as captured:
        bucket.capture(key, 4.0)
    # then nothing was fetched or opened, and the reason names no internal address
    assert canary.silent()
    for error in (probed.value, captured.value):
        assert str(error).startswith("not a video: the content is no container")
        for text in _forbidden_text(canary, bucket.url(key).split("?")[0]):
            assert text not in str(error)


def _with_external_data_reference(mp4: bytes, url: str) -> bytes:
    """Rewrite an MP4's data reference to point at ``url`` (moov after mdat, so no offset moves)."""
    containers = {b"moov", b"trak", b"mdia", b"minf", b"dinf"}

    def rewrite(data: bytes) -> bytes:
        out, pos = b"", 0
        while pos + 8 <= len(data):
            size, kind = struct.unpack(">I4s", data[pos : pos + 8])
            body = data[pos + 8 : pos + size]
            if kind in containers:
                body = rewrite(body)
            elif kind == b"dref":
                entry = b"\x00\x00\x00\x00" + url.encode() + b"\x00"  # flags 0: data is elsewhere
                body = struct.pack(">II", 0, 1) + struct.pack(">I4s", 8 + len(entry), b"url ")
                body += entry
            out += struct.pack(">I4s", 8 + len(body), kind) + body
            pos += size
        return out

    return rewrite(mp4)


def test_mp4_data_reference_to_a_url_is_never_followed(
    bucket: Bucket, canary: Canary, tmp_path: Path
) -> None:
    # given an MP4 whose data reference points at the canary
    clip = samples.make_video(tmp_path / "clip.mp4", seconds=2, size="160x120", faststart=False)
    crafted = _with_external_data_reference(clip.read_bytes(), f"{canary.url}/media.mp4")
    assert f"{canary.url}/media.mp4".encode() in crafted
    bucket.s3.put_object(Bucket="videofleet-test", Key="up/dref.mp4", Body=crafted)
    # when it is probed and its thumbnails are cut, the video's own bytes are what is read
    assert bucket.probe("up/dref.mp4").duration_s == 2.0
    assert len(bucket.capture("up/dref.mp4", 2.0).shots) == 5
    # then the reference was never followed
    assert canary.silent()


@pytest.mark.parametrize(
    "name", ["hls-absolute-segment", "ffconcat-absolute-path", "hls-file-segment"]
)
def test_a_worker_fails_crafted_uploads_at_once_and_sends_nothing(
    fleet: Fleet, canary: Canary, name: str
) -> None:
    # given a crafted upload notified like any other
    path = canary.fifo.parent / f"{name}.mp4"
    path.write_bytes(CRAFTED[name](canary))
    [outcome] = fleet.deliver(fleet.upload(path, f"uploads/{name}.mp4"))
    # when the real worker validates it
    row = fleet.wait(outcome.task_id)
    # then it failed as not a video, without retries, requests or file reads
    assert (row.status, row.retry_count) == ("failed", 0)
    assert row.error_message.startswith("validate-video: not a video: the content is no container")
    assert "127.0.0.1" not in row.error_message
    assert fleet.keys("thumbnails/") == []
    assert canary.silent()
