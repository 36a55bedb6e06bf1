"""Binding a port and serving an ASGI app: in the foreground (`run_foreground`, the CLI's servers)
or on a thread (`agl_core.server.background`).

The socket is bound before uvicorn starts, so the start line carries the real address (``port=0``
picks a free one) and is printed only once the port is ours and listening.
"""

from __future__ import annotations

import socket
from typing import Any

import uvicorn


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (``0``: a free port), not yet listening."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def url_of(sock: socket.socket, scheme: str = "http") -> str:
    host, port = sock.getsockname()[:2]
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def access_note(token: str | None, env: str) -> str:
    """How a start line says whether clients need the shared secret (never the secret itself)."""
    return f"token required ({env})" if token else "no token"


def run_foreground(
    app: Any,
    host: str,
    port: int,
    *,
    start_line: str,
    verbose: bool = False,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
) -> None:
    """Serve `app` until interrupted; prints `start_line` with ``{url}`` filled in once bound.

    ``verbose`` logs every request (uvicorn's access log) and uvicorn's own lifecycle lines.
    ``ssl_certfile``/``ssl_keyfile`` (PEM) serve HTTPS through uvicorn's TLS; the URL then says https.
    """
    config = uvicorn.Config(
        app,
        log_level="info" if verbose else "warning",
        lifespan="off",
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
    )
    config.load()  # a bad certificate or key fails here, before the start line
    sock = bind_socket(host, port)
    sock.listen(2048)  # connections queue from now on, so the start line is true when printed
    print(start_line.replace("{url}", url_of(sock, "https" if ssl_certfile else "http")), flush=True)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
