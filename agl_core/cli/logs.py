"""The ``agentlightning`` log: to the console and to ``$AGL_HOME/logs/training.log`` (rotating).

Every training entry point calls `setup_logging`, the CLI and the Python API's trainers alike, so a
run's log lands in the same place whichever started it. On a terminal the console gets rich's
handler (progress bars share its `console`, so log lines print above the bar); otherwise each
record is one plain line on stderr, readable in CI logs and redirected output.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path
from typing import TextIO

from rich.console import Console

from agl_core.paths import logs_dir

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: The console that log lines and progress bars share (stderr: stdout stays for a command's result).
console = Console(stderr=True)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Plain lines to whatever ``sys.stderr`` is at the time of the record (tests swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def _ours(logger: logging.Logger, kind: str) -> logging.Handler | None:
    return next((h for h in logger.handlers if getattr(h, "_agl", None) == kind), None)


def _add(logger: logging.Logger, handler: logging.Handler, kind: str) -> None:
    handler._agl = kind  # type: ignore[attr-defined]  # our mark: a second setup adds nothing twice
    logger.addHandler(handler)


def log_file() -> Path:
    """``$AGL_HOME/logs/training.log``, where every run's log goes (rotated at 10 MB, 5 kept)."""
    return logs_dir() / "training.log"


def setup_logging(verbose: bool | None = None) -> Path:
    """Attach the console and the rotating ``training.log`` of the current ``$AGL_HOME`` (once;
    again when ``AGL_HOME`` changed); returns the log file's path. `verbose` sets DEBUG (True) or
    INFO (False); None keeps the level already set (INFO the first time)."""
    logger = logging.getLogger("agentlightning")
    path = log_file()
    file_handler = _ours(logger, "file")
    if file_handler is not None and Path(getattr(file_handler, "baseFilename", "")) != path:
        logger.removeHandler(file_handler)
        file_handler.close()
        file_handler = None
    if file_handler is None:
        file_handler = logging.handlers.RotatingFileHandler(path, maxBytes=10_000_000, backupCount=5)
        file_handler.setFormatter(logging.Formatter(_FORMAT))
        _add(logger, file_handler, "file")
    if _ours(logger, "console") is None:
        if console.is_terminal:
            from rich.logging import RichHandler

            _add(logger, RichHandler(console=console, show_path=False, markup=False, rich_tracebacks=False), "console")
        else:
            plain = _StderrHandler()
            plain.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
            _add(logger, plain, "console")
    if verbose is not None:
        logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    elif logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    logger.propagate = False
    return path
