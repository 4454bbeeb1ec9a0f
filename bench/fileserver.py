"""A tiny HTTP file server with Range support that counts the bytes it actually sent.

It stands in for the storage endpoint (R2 answers ranged GETs the same way): bounded ranges
(``bytes=a-b``) and open-ended ones (``bytes=a-``) both work, and a body is written in 64 KB
chunks, so a client that hangs up (ffmpeg after a seek) stops the count where the socket
refused more, which is what the endpoint would have billed as egress.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import urllib3

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
    # Keep-alive, as object stores do: a client reuses its connection between ranges.
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Without this, Nagle's algorithm and the client's delayed ACK stall the last segment
        # of every response by 40 ms; real object stores do not add that to each request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, *, body: bool) -> None:
        if self.path in ("/__stats", "/__reset"):
            self._stats(reset=self.path == "/__reset")
            return
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

    def _stats(self, *, reset: bool) -> None:
        with self.server.lock:
            counter = self.server.counter
            payload = json.dumps({"requests": counter.requests, "bytes_sent": counter.bytes_sent})
            if reset:
                counter.reset()
        data = payload.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.counter = Counter()
        self.lock = threading.Lock()


class FileServer:
    """Serve ``root`` on 127.0.0.1 on a free port from a separate process.

    A separate process, as the storage endpoint is: the server's Python work never competes
    for the bench process's GIL or skews its CPU figures.
    """

    def __init__(self, root: Path) -> None:
        self._root = root
        self._proc: subprocess.Popen[str] | None = None
        self._port = 0
        self._pool = urllib3.PoolManager()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self._port}/{name}"

    def stats(self, *, reset: bool = False) -> Counter:
        """Requests and bytes sent so far (not counting these control calls)."""
        response = self._pool.request("GET", self.url("__reset" if reset else "__stats"))
        data = json.loads(response.data)
        return Counter(data["requests"], data["bytes_sent"])

    def reset(self) -> None:
        self.stats(reset=True)

    def __enter__(self) -> FileServer:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.fileserver", str(self._root)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        assert self._proc.stdout is not None
        self._port = int(self._proc.stdout.readline())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait()
        self._pool.clear()


def main() -> None:
    """Serve the directory given as the first argument; print the port, then serve forever."""
    parser = argparse.ArgumentParser(prog="python -m bench.fileserver", description=__doc__)
    parser.add_argument("root", type=Path, help="The directory to serve.")
    server = _Server(parser.parse_args().root)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
