"""A tiny HTTP file server with Range support that counts the bytes it actually sent.

It stands in for the storage endpoint (R2 answers ranged GETs the same way): bounded ranges
(``bytes=a-b``) and open-ended ones (``bytes=a-``) both work, and a body is written in 64 KB
chunks, so a client that hangs up (ffmpeg after a seek) stops the count where the socket
refused more, which is what the endpoint would have billed as egress.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CHUNK_BYTES = 64 * 1024
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@dataclass
class Counter:
    """Requests and body bytes sent, per file name and in total."""

    requests: int = 0
    bytes_sent: int = 0

    def reset(self) -> None:
        self.requests = 0
        self.bytes_sent = 0


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, *, body: bool) -> None:
        path = self.server.root / self.path.split("?", 1)[0].lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        size = path.stat().st_size
        start, end, status = 0, size - 1, 200
        match = _RANGE.fullmatch(self.headers.get("Range", ""))
        if match and (match.group(1) or match.group(2)):
            if match.group(1):
                start = int(match.group(1))
                end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            else:
                start = max(size - int(match.group(2)), 0)
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.end_headers()
                return
            status = 206
        with self.server.lock:
            self.server.counter.requests += 1
        self.send_response(status)
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if not body:
            return
        with path.open("rb") as file:
            file.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = file.read(min(CHUNK_BYTES, left))
                try:
                    self.wfile.write(chunk)
                except OSError:
                    return
                with self.server.lock:
                    self.server.counter.bytes_sent += len(chunk)
                left -= len(chunk)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.counter = Counter()
        self.lock = threading.Lock()


class FileServer:
    """Serve ``root`` on 127.0.0.1 on a free port, in a background thread."""

    def __init__(self, root: Path) -> None:
        self._server = _Server(root)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def counter(self) -> Counter:
        return self._server.counter

    def url(self, name: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/{name}"

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
