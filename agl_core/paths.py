"""Where Agent Lightning keeps its files: ``$AGL_HOME`` (default ``~/.agent-lightning``)."""

from __future__ import annotations

import os
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


def cache_dir() -> Path:
    """User cache for built artefacts (tiny models): ``$XDG_CACHE_HOME/agent-lightning``."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = root / "agent-lightning"
    path.mkdir(parents=True, exist_ok=True)
    return path
