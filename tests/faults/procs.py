"""Processes the fault tests start and kill: the ``agent-lightning collector`` command and Python children."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import httpx

CLI = str(Path(sys.executable).with_name("agent-lightning"))


def wait_until(condition: Callable[[], bool], timeout: float, what: str, poll: float = 0.05) -> None:
    """Poll `condition` until it holds; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(poll)


def kill9(proc: subprocess.Popen) -> None:
    """``kill -9``: no handler runs, nothing is flushed."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


class Collector:
    """``agent-lightning collector`` on `port` over the store at `store_url`, as a child process."""

    def __init__(self, port: int, store_url: str, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.port, self.store_url, self.log = port, store_url, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [CLI, "collector", "--host", "127.0.0.1", "--port", str(self.port), "--store", self.store_url],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._healthy, 60, f"collector on {self.url} (log {self.log})", poll=0.1)

    def _healthy(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        assert self.proc is not None
        kill9(self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)
