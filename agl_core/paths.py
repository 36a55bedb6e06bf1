"""Where Agent Lightning keeps its files: ``$AGL_HOME`` (default ``~/.agent-lightning``)."""

from __future__ import annotations

import os
import re
from pathlib import Path


def agl_home() -> Path:
    home = Path(os.environ.get("AGL_HOME") or Path.home() / ".agent-lightning").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def default_store_url() -> str:
    return os.environ.get("AGL_STORAGE") or f"sqlite:///{agl_home() / 'store.db'}"


def logs_dir() -> Path:
    path = agl_home() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    """Where run folders live unless a run is told otherwise: ``$AGL_HOME/runs``."""
    path = agl_home() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_run_dir(agent: str, algorithm: str) -> Path:
    """A run's folder by default: ``$AGL_HOME/runs/<agent>-<algorithm>`` (stable, so a resume finds it).

    Characters that are not safe in a file name become ``-``."""
    return runs_dir() / re.sub(r"[^A-Za-z0-9._-]+", "-", f"{agent}-{algorithm}").strip("-.")


def cache_dir() -> Path:
    """User cache for built artefacts (tiny models): ``$XDG_CACHE_HOME/agent-lightning``."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = root / "agent-lightning"
    path.mkdir(parents=True, exist_ok=True)
    return path
