"""Where Agent Lightning keeps its files: ``$AGL_HOME`` (default ``~/.agent-lightning``)."""

from __future__ import annotations

import os
import re
from pathlib import Path


def agl_home() -> Path:
    home = Path(os.environ.get("AGL_HOME") or Path.home() / ".agent-lightning").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


#: fsspec protocols that are also store URL schemes (the collector's ``http://``, ``memory://``).
_STORE_SCHEMES = frozenset({"http", "https", "memory"})
#: Object stores recognised without fsspec installed (so that ``s3://`` is never taken for a store).
_OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "file"})


def object_storage() -> str | None:
    """``AGL_STORAGE`` when it names object storage (``s3://bucket/prefix``, ``gs://``, ``az://``,
    ``file://``: any fsspec protocol but ``http(s)``/``memory``, which are store URLs) rather than
    the store; None otherwise. Run folders are mirrored there (`agl_core.training.run_mirror`)."""
    value = os.environ.get("AGL_STORAGE") or ""
    scheme = value.split("://", 1)[0].lower() if "://" in value else ""
    if not scheme or scheme in _STORE_SCHEMES:
        return None
    try:
        from fsspec.registry import known_implementations
    except ImportError:
        return value if scheme in _OBJECT_STORES else None
    return value if scheme in _OBJECT_STORES or scheme in known_implementations else None


def default_store_url() -> str:
    """``AGL_STORAGE`` when it is a store URL, else the embedded SQLite ``$AGL_HOME/store.db``."""
    value = os.environ.get("AGL_STORAGE")
    return value if value and object_storage() is None else f"sqlite:///{agl_home() / 'store.db'}"


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
