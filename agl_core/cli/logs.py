"""Logging to the console (rich) and to ``$AGL_HOME/logs/training.log`` (rotating)."""

from __future__ import annotations

import logging
import logging.handlers

from agl_core.paths import logs_dir

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(verbose: bool = False) -> str:
    """Idempotent; returns the log file path."""
    logger = logging.getLogger("agentlightning")
    path = str(logs_dir() / "training.log")
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not any(getattr(h, "_agl", False) for h in logger.handlers):
        file_handler = logging.handlers.RotatingFileHandler(path, maxBytes=10_000_000, backupCount=5)
        file_handler.setFormatter(logging.Formatter(_FORMAT))
        from rich.logging import RichHandler

        console = RichHandler(show_path=False, markup=False, rich_tracebacks=False)
        handlers: tuple[logging.Handler, ...] = (file_handler, console)
        for handler in handlers:
            handler._agl = True  # type: ignore[attr-defined]  # our mark, so a second setup adds no handler twice
            logger.addHandler(handler)
        logger.propagate = False
    return path
