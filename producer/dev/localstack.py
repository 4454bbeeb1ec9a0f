"""The local stack on the embedded defaults: Redis, a local S3 endpoint and a Celery worker.

Each piece is started only when nothing answers at the configured address, and stopped again
by the ``ExitStack`` it was registered with. The S3 endpoint is moto's server, which speaks the
S3 API over real HTTP, so the fleet talks to it exactly as it talks to R2.

For the tests and the benchmarks it also holds the services they start on private addresses:
an in-process S3 server on a free port, and an empty RabbitMQ virtual host. This is development
tooling (moto and ``rabbitmqctl`` are not production dependencies).
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

from botocore.exceptions import ClientError

from schema.broker import BrokerKind, broker_kind
from schema.message import QUEUE
from schema.settings import Settings
from schema.storage import make_s3_client

logger = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 20.0
# prctl(2) option: the signal a child gets when its parent dies.
PR_SET_PDEATHSIG = 1
SHUTDOWN_TIMEOUT_S = 20.0
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class StackError(RuntimeError):
    """Raised when a local service cannot be started; the message says what to install."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def is_listening(host: str, port: int) -> bool:
    """Whether something accepts TCP connections at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_listening(
    host: str, port: int, *, what: str, timeout_s: float = STARTUP_TIMEOUT_S
) -> None:
    """Wait until ``host:port`` accepts connections or fail with a message naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while not is_listening(host, port):
        if time.monotonic() > deadline:
            raise StackError(
                f"{what} did not start listening on {host}:{port} in {timeout_s:.0f} s"
            )
        time.sleep(0.1)


def spawn(
    stack: ExitStack,
    args: list[str],
    *,
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a long-running child whose output goes to ``log``; the stack stops it."""
    log.parent.mkdir(parents=True, exist_ok=True)
    out = stack.enter_context(log.open("ab"))
    proc = subprocess.Popen(
        args,
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=cwd,
        start_new_session=True,
        preexec_fn=_terminate_with_parent,
    )
    stack.callback(stop, proc)
    return proc


def _terminate_with_parent() -> None:
    """In the child: SIGTERM when the process that spawned it dies, however it died.

    The stack stops children on a normal exit; a SIGKILLed demo or test would otherwise leave
    a worker behind that takes the next run's tasks from the same Redis database.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a warm shutdown for Celery), then SIGKILL if it takes too long."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def ensure_redis(settings: Settings, stack: ExitStack, *, logdir: Path) -> None:
    """Start ``redis-server`` for a local broker URL when none is running (RabbitMQ: check it)."""
    url = urlparse(settings.broker_url)
    rabbitmq = broker_kind(settings.broker_url) is BrokerKind.RABBITMQ
    host, port = url.hostname or "127.0.0.1", url.port or (5672 if rabbitmq else 6379)
    if is_listening(host, port):
        return
    if rabbitmq:
        raise StackError(f"RabbitMQ at {host}:{port} is not reachable: start rabbitmq-server")
    if host not in LOCAL_HOSTS:
        raise StackError(f"the broker at {host}:{port} is not reachable")
    server = shutil.which("redis-server")
    if server is None:
        raise StackError("redis-server is not installed: run 'apt-get install redis-server'")
    spawn(
        stack,
        [server, "--port", str(port), "--bind", host, "--save", "", "--appendonly", "no"],
        log=logdir / "redis.log",
    )
    wait_listening(host, port, what="redis-server")


def ensure_local_s3(settings: Settings, stack: ExitStack, *, logdir: Path) -> None:
    """Start moto's S3 server for a local endpoint URL when none is running."""
    url = urlparse(settings.s3_endpoint_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    if is_listening(host, port):
        return
    if host not in LOCAL_HOSTS:
        raise StackError(f"the S3 endpoint {settings.s3_endpoint_url} is not reachable")
    spawn(
        stack,
        [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
        log=logdir / "s3.log",
    )
    wait_listening(host, port, what="the local S3 endpoint (moto)")


class S3Server:
    """moto's S3 server in this process on a free port; stopping and starting keeps its objects."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: Any = None

    def start(self) -> None:
        """Serve on ``self.port`` (again, after ``stop``)."""
        if self._server is None:
            # moto is a development dependency: imported only by whoever starts one.
            from moto.server import ThreadedMotoServer

            self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
            self._server.start()
            wait_listening("127.0.0.1", self.port, what="moto")

    def stop(self) -> None:
        """Stop answering (an outage); the objects stay for the next ``start``."""
        if self._server is not None:
            self._server.stop()
            self._server = None


def rabbitmq_url(vhost: str, *, host: str = "127.0.0.1", port: int = 5672) -> str:
    """The URL of an empty RabbitMQ virtual host ``vhost``, (re)created through ``rabbitmqctl``.

    Deleting the vhost drops every queue and exchange a previous run left, like ``flushdb``.

    Raises:
        StackError: the vhost could not be created (no ``rabbitmq-server`` running).
    """
    ctl = ["rabbitmqctl", "--quiet"]
    try:
        subprocess.run([*ctl, "delete_vhost", vhost], capture_output=True, check=False)
        for args in (
            ["add_vhost", vhost],
            ["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        ):
            subprocess.run([*ctl, *args], capture_output=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise StackError(
            f"RabbitMQ vhost {vhost} could not be created (is rabbitmq-server running?): {exc}"
        ) from exc
    return f"amqp://guest:guest@{host}:{port}/{quote(vhost, safe='')}"


def ensure_bucket(settings: Settings) -> None:
    """Create the configured bucket if it does not exist (local endpoints only need this)."""
    s3 = make_s3_client(settings)
    try:
        s3.head_bucket(Bucket=settings.s3_bucket)
    except ClientError:
        s3.create_bucket(Bucket=settings.s3_bucket)


def start_worker(
    stack: ExitStack,
    *,
    logdir: Path,
    name: str,
    concurrency: int = 2,
    env: dict[str, str] | None = None,
    app: str = "workers",
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Run ``celery -A <app> worker`` on the ``video-events`` queue as a child process.

    ``cwd`` is where ``app`` is imported from: another checkout's tree runs that version.
    """
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        app,
        "worker",
        "-Q",
        QUEUE,
        "-c",
        str(concurrency),
        "-n",
        f"{name}@%h",
        "--loglevel",
        "INFO",
        "-E",
    ]
    return spawn(stack, args, log=logdir / f"{name}.log", env=env, cwd=cwd)
