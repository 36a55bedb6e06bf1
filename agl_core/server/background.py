"""Run the store server in a background thread of this process (tests, benchmarks, notebooks)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from agl_core.server.app import create_app
from agl_core.store.base import LightningStore


class BackgroundCollector:
    """``with BackgroundCollector(store) as server: server.url`` — a store server on a free port.

    The socket is bound before the thread starts, so ``url`` is valid at once and the port
    cannot be taken by someone else in between.
    """

    def __init__(self, store: LightningStore, host: str = "127.0.0.1", port: int = 0, **app_options: Any) -> None:
        self.store = store
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        config = uvicorn.Config(create_app(store, **app_options), log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="agl-collector", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> "BackgroundCollector":
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"store server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        self._socket.close()

    def __enter__(self) -> "BackgroundCollector":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
