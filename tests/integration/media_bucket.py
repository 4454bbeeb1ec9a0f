"""Objects in moto's S3 read back through a byte-counting proxy: the media tests' bucket.

The proxy sits where R2 would be: what it forwards from moto to the reader is what the storage
endpoint sent, so the bounded-read promise is checked in bytes and requests, not assumed.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3

from schema.settings import DEFAULT_MAX_VIDEO_PIXELS
from tests.fleet import BUCKET
from workers.media import storyboard
from workers.media.probe import MediaInfo, plan_thumbnails, probe
from workers.media.rangereader import RangeSource, ReadLimits
from workers.media.thumbnails import Capture, capture

LIMITS = ReadLimits(
    block_bytes=128 * 1024,
    max_request_bytes=4 * 1024 * 1024,
    cache_bytes=8 * 1024 * 1024,
    timeout_s=30,
)


_METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE")


class CountingProxy:
    """A TCP proxy counting the bytes moto sent back and the requests it was asked, by method.

    A request line is recognised by ``"<METHOD> /"`` in what the client sent: the bodies sent
    through it (small JPEGs, WebVTT) do not contain one by chance in practice.
    """

    def __init__(self, upstream_port: int) -> None:
        self._upstream = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.bytes_sent = 0
        self.requests = 0
        self.methods: Counter[str] = Counter()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> None:
        with self._lock:
            self.bytes_sent = 0
            self.requests = 0
            self.methods.clear()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._upstream))
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, downstream: bool) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
                with self._lock:
                    if downstream:
                        self.bytes_sent += len(data)
                    else:
                        for method in _METHODS:
                            if found := data.count(f"{method} /".encode()):
                                self.methods[method] += found
                        self.requests = self.methods["GET"]
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


@dataclass
class Bucket:
    """Objects in moto, read back through the counting proxy."""

    s3: Any
    proxy: CountingProxy
    pool: urllib3.PoolManager

    def put(self, path: Path, key: str) -> int:
        data = path.read_bytes()
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=data)
        return len(data)

    def capture(
        self, key: str, duration_s: float, *, count: int = 5, tiles: int = 0, decoders: int = 1
    ) -> Capture:
        url = self.url(key)
        board = (
            storyboard.plan_storyboard(
                duration_s,
                min_interval_s=1,
                max_tiles=tiles,
                columns=5,
                tile_width=96,
                tile_height=54,
            )
            if tiles
            else None
        )
        self.proxy.reset()
        return capture(
            url,
            plan_thumbnails(duration_s, count),
            video_key=key,
            width_px=160,
            jpeg_quality=3,
            search_attempts=5,
            board=board,
            limits=LIMITS,
            pool=self.pool,
            decoders=decoders,
            max_pixels=DEFAULT_MAX_VIDEO_PIXELS,
        )

    def probe(self, key: str, *, max_pixels: int = DEFAULT_MAX_VIDEO_PIXELS) -> MediaInfo:
        """The validate step's probe of ``key``, over the same kind of range reader."""
        source = RangeSource(self.url(key), video_key=key, pool=self.pool)
        return probe(source.cursor(), video_key=key, size_bytes=None, max_pixels=max_pixels)

    def url(self, key: str) -> str:
        return str(
            self.s3.generate_presigned_url(
                "get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=600
            )
        )
