"""The tiny model `serve` runs in these tests, and the fuzz tally printed after the run (requests
per server, answers per status class)."""

from __future__ import annotations

import pytest

from tests.security.fuzzing import TALLY


def pytest_terminal_summary(terminalreporter) -> None:
    if TALLY.requests:
        terminalreporter.write_line(TALLY.summary())


@pytest.fixture(scope="session")
def tiny():
    """The serve tests' tiny chat model (one training step: these tests care about the HTTP side)."""
    torch = pytest.importorskip("torch")
    from tests.trainers import serve_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield serve_model.build(steps=1)
    torch.set_num_threads(threads)
