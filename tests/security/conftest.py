"""Prints the fuzz tests' tally (requests per server, answers per status class) after the run."""

from __future__ import annotations

from tests.security.fuzzing import TALLY


def pytest_terminal_summary(terminalreporter) -> None:
    if TALLY.requests:
        terminalreporter.write_line(TALLY.summary())
