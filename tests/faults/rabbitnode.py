"""A private RabbitMQ node for fault tests: killed and restarted without touching the shared one.

The node has its own name, ports, data and log directories, configuration file (the system's
``/etc/rabbitmq/rabbitmq.conf`` pins the shared node's listener) and no plugins. Run as root,
``rabbitmq-server`` switches to the ``rabbitmq`` user, so the directories are handed to it
(and must be reachable by it: pytest's own temporary directories are not).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

from producer.dev import localstack
from tests.fleet import RABBITMQ_HOST, _free_port

STARTUP_TIMEOUT_S = 60.0


class RabbitNode:
    """``rabbitmq-server`` on free ports with data kept across ``kill()`` and ``start()``."""

    def __init__(self, base: Path) -> None:
        self.port = _free_port()
        self.name = f"videofleet-faults-{self.port}@localhost"
        self.url = f"amqp://guest:guest@{RABBITMQ_HOST}:{self.port}//"
        self._base = base
        for sub in ("mnesia", "log"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {RABBITMQ_HOST}:{self.port}\n"
        )
        (base / "enabled_plugins").write_text("[].\n")
        (base / "rabbitmq-env.conf").write_text("")
        if os.geteuid() == 0:
            user = pwd.getpwnam("rabbitmq")
            for path in [base, *base.rglob("*")]:
                os.chown(path, user.pw_uid, user.pw_gid)
        self._env = {
            **os.environ,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(_free_port()),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
        }
        self._stack: ExitStack | None = None
        self._vm_pid = 0

    def start(self) -> None:
        """Start the node (on its old data, when it ran before) and wait for its listener."""
        if self._stack is not None:
            return
        server = shutil.which("rabbitmq-server")
        if server is None:
            raise localstack.StackError("rabbitmq-server is not installed")
        self._stack = ExitStack()
        localstack.spawn(self._stack, [server], log=self._base / "server.log", env=self._env)
        localstack.wait_listening(
            RABBITMQ_HOST, self.port, what="rabbitmq-server", timeout_s=STARTUP_TIMEOUT_S
        )
        # Asked now: the CLI takes a second or two to answer, too slow at the moment of a kill.
        self._vm_pid = int(self._ctl("eval", "os:getpid().").strip().strip('"'))

    def kill(self) -> None:
        """SIGKILL the node's Erlang VM: a crash, nothing flushed on the way out."""
        if self._stack is None:
            return
        os.kill(self._vm_pid, signal.SIGKILL)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while localstack.is_listening(RABBITMQ_HOST, self.port):
            assert time.monotonic() < deadline, "the killed node still listens"
            time.sleep(0.05)
        self._stack.close()
        self._stack = None

    def stop(self) -> None:
        """Stop the node cleanly (end of the test)."""
        if self._stack is None:
            return
        subprocess.run(["rabbitmqctl", "-n", self.name, "stop"], capture_output=True, timeout=60)
        self._stack.close()
        self._stack = None

    def log_tail(self) -> str:
        log = self._base / "server.log"
        return log.read_text()[-3000:] if log.exists() else ""

    def queue_messages(self, queue: str) -> int:
        """Ready plus unacknowledged messages of ``queue`` (0 when it does not exist)."""
        out = self._ctl("list_queues", "--no-table-headers", "name", "messages")
        for line in out.splitlines():
            name, _, count = line.rpartition("\t")
            if name == queue:
                return int(count)
        return 0

    def _ctl(self, *args: str) -> str:
        result = subprocess.run(
            ["rabbitmqctl", "--quiet", "-n", self.name, *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return result.stdout
