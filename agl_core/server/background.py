"""Servers on a background thread of this process: any ASGI app (`UvicornThread`), and the store
server (`BackgroundCollector`) for tests, benchmarks and notebooks."""

from __future__ import annotations

import threading
import time
from typing import Any, Self

import uvicorn

from agl_core.server.app import create_app
from agl_core.server.foreground import bind_socket
from agl_core.store.base import LightningStore


class UvicornThread:
    """``with UvicornThread(app) as server: server.url`` — `app` served by uvicorn on a thread.

    The socket is bound here, before the thread starts, so ``url`` is valid at once and the port
    (``0``: a free one) cannot be taken by someone else in between. `config` goes to ``uvicorn.Config``.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *, name: str = "agl-server", **config: Any) -> None:
        self._socket = bind_socket(host, port)
        self.host, self.port = self._socket.getsockname()[:2]
        self.name = name
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", **config))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> Self:
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name=self.name, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} on {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._socket.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class BackgroundCollector(UvicornThread):
    """``with BackgroundCollector(store) as server: server.url`` — a store server on a free port."""

    def __init__(self, store: LightningStore, host: str = "127.0.0.1", port: int = 0, **app_options: Any) -> None:
        self.store = store
        super().__init__(create_app(store, **app_options), host, port, name="agl-collector")
