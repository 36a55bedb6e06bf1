"""`create_dashboard_app` (a Starlette app over any store) and `serve_dashboard` (uvicorn)."""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from agl_core.dashboard.api import DashboardApi
from agl_core.dashboard.auth import TOKEN_ENV, TokenMiddleware
from agl_core.dashboard.headers import SecurityHeadersMiddleware
from agl_core.server.access import check_bind
from agl_core.store import LightningStore

STATIC_DIR = Path(__file__).parent / "static"


async def _index(request: Request) -> FileResponse:
    # The page routes itself from the URL fragment, so one HTML file serves every view.
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)  # registered for HTTPException only
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code)


def create_dashboard_app(store: LightningStore, token: str | None = None) -> Starlette:
    """The dashboard over `store`; with a `token`, every request must present it (`auth`). Every
    answer carries a strict Content-Security-Policy (`headers`)."""
    routes = [
        Route("/", _index, methods=["GET"]),
        *DashboardApi(store).routes(),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    middleware = [Middleware(SecurityHeadersMiddleware)]
    if token:
        middleware.append(Middleware(TokenMiddleware, token=token))
    app = Starlette(routes=routes, middleware=middleware, exception_handlers={HTTPException: _http_error})
    app.state.store = store
    return app


def serve_dashboard(
    host: str = "127.0.0.1",
    port: int = 8080,
    store_url: str | None = None,
    token: str | None = None,
    *,
    verbose: bool = False,
) -> None:
    """Serve the dashboard until interrupted; prints one line with its URL once listening, and
    every request when `verbose`.

    Raises `agl_core.server.access.AccessError` before opening anything when `host` is not a loopback address
    and no token is given (argument or ``AGL_DASHBOARD_TOKEN``).
    """
    from agl_core.server.foreground import access_note, run_foreground

    token = token or os.environ.get(TOKEN_ENV) or None
    check_bind(host, token, service="the dashboard", token_env=TOKEN_ENV)
    store = LightningStore(store_url)
    open_with = "; sign in at {url}/login" if token else ""
    line = f"dashboard at {{url}} ({access_note(token, TOKEN_ENV)}{open_with}; store {store!r})"
    try:
        run_foreground(create_dashboard_app(store, token=token), host, port, start_line=line, verbose=verbose)
    finally:
        store.close()
