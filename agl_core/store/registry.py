"""Which `LightningStore` backend serves a URL scheme.

The built-in schemes are listed here; other layers add theirs with `register_backend`, or a
`add_backend_finder` callback that is asked for a scheme nobody registered (the plugin layer
installs one that reads the ``agl_store_backends`` hook). The store never imports its extenders.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any, Callable

#: Given a scheme, a backend (a class or ``"module:attr"``, imported on first use) or None.
BackendFinder = Callable[[str], Any]

_lock = threading.Lock()
_backends: dict[str, Any] = {
    "sqlite": "agl_core.store.sql:SqlStore",
    "memory": "agl_core.store.sql:SqlStore",
    "postgresql": "agl_core.store.sql:SqlStore",
    "postgres": "agl_core.store.sql:SqlStore",
    "http": "agl_core.store.http_client:HttpStore",
    "https": "agl_core.store.http_client:HttpStore",
}
_finders: list[BackendFinder] = []


def register_backend(scheme: str, backend: Any) -> None:
    """Serve ``scheme://…`` URLs with `backend` (a `LightningStore` subclass or ``"module:attr"``)."""
    with _lock:
        _backends[scheme.lower()] = backend


def add_backend_finder(finder: BackendFinder) -> None:
    """Ask `finder(scheme)` for schemes nobody registered; it returns a backend or None."""
    with _lock:
        if finder not in _finders:
            _finders.append(finder)


def url_scheme(url: str) -> str:
    """``postgresql+psycopg://…`` → ``postgresql``."""
    return url.split(":", 1)[0].split("+", 1)[0].lower()


def backend_for_url(url: str) -> type:
    """The backend class for `url`; ``ValueError`` for a scheme nobody serves."""
    scheme = url_scheme(url)
    with _lock:
        target = _backends.get(scheme)
        finders = list(_finders)
    for finder in finders:
        if target is not None:
            break
        target = finder(scheme)
    if target is None:
        raise ValueError(
            f"unknown store URL {url!r}: use sqlite:///path, memory://, postgresql://… or http://host:port"
        )
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        target = getattr(importlib.import_module(module), attr)
    return target
