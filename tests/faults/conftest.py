"""What the fault tests share: the counts each one checked, printed after the run, and a
PostgreSQL cluster of the test's own that a test may restart."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Iterator

import pytest

from tests.fixtures.scripted_openai import free_port

#: One line per fault test: what it acknowledged, stored, retried (quoted in closing notes).
SUMMARY: list[str] = []


def report(line: str) -> None:
    """Record `line` for the run's summary (and print it, for ``-s``)."""
    SUMMARY.append(line)
    print(line)


def pytest_terminal_summary(terminalreporter) -> None:
    for line in SUMMARY:
        terminalreporter.write_line(f"faults: {line}")


@dataclass
class Postgres:
    """A throw-away cluster on a free loopback port; `restart` stops it the hard way and starts it."""

    url: str
    data: str
    port: int
    as_user: list[str]

    def _ctl(self, *args: str) -> None:
        subprocess.run([*self.as_user, "pg_ctl", "-D", self.data, *args], check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -h 127.0.0.1"
        self._ctl("-l", f"{self.data}/log", "-w", "-o", options, "start")

    def stop(self, mode: str = "immediate") -> None:
        self._ctl("-m", mode, "-w", "stop")


@pytest.fixture()
def postgres() -> Iterator[Postgres]:
    initdb = shutil.which("initdb")
    if not (initdb and shutil.which("pg_ctl")):
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are not installed")
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install 'agentlightning[postgres]'")
    user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    as_user = ["runuser", "-u", user, "--"] if os.geteuid() == 0 else []
    data = tempfile.mkdtemp(prefix="agl-pg-faults-")
    shutil.chown(data, user)
    subprocess.run([*as_user, initdb, "-D", data, "-A", "trust", "-U", user], check=True, capture_output=True)
    port = free_port()
    server = Postgres(f"postgresql://{user}@127.0.0.1:{port}/postgres", data, port, as_user)
    server.start()
    try:
        yield server
    finally:
        subprocess.run([*as_user, "pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(data, ignore_errors=True)
