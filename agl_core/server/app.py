"""The store server: the LightningStore's HTTP API plus an OTLP/HTTP trace receiver, on one port.

Routes: ``GET /health``, ``POST /api/store/{method}`` (see `store_api`) and ``POST /v1/traces``
(OTLP/HTTP; protobuf or JSON, optionally gzip/deflate). Store calls run in worker threads so a
slow write or a long ``wait_for_rollouts`` never stalls the event loop.

Bound beyond loopback it needs a token (``--token`` / ``AGL_STORE_TOKEN``, see `agl_core.server.access`),
and every request but ``/health`` must present it as ``Authorization: Bearer``: `HttpStore` sends
``AGL_STORE_TOKEN``; an OpenTelemetry exporter sends it with
``OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20<token>``.
"""

from __future__ import annotations

import logging
import os

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agl_core.server import otlp
from agl_core.server.access import BearerTokenMiddleware, check_bind
from agl_core.server.limits import MAX_BODY_BYTES, MAX_CONCURRENT_EXPORTS, LimitError, read_body
from agl_core.server.store_api import store_routes
from agl_core.store.base import LightningStore, StoreUnavailable
from agl_core.store.http_client import TOKEN_ENV, HttpStore

log = logging.getLogger("agentlightning.collector")


def _ingest(store: LightningStore, body: bytes, kind: str, encoding: str | None, max_bytes: int) -> bytes:
    request = otlp.decode_request(otlp.decompress(body, encoding, max_bytes), kind)
    decoded = otlp.spans_from_request(request)
    if decoded.spans:
        try:
            store.add_spans(decoded.spans)
        except (ValueError, TypeError) as exc:  # a span the store's rules refuse (a reward that is no number)
            raise otlp.OtlpError(400, f"spans refused by the store: {exc}") from None
        except StoreUnavailable as exc:  # disk full, database unreachable: exporters retry a 503
            raise otlp.OtlpError(503, str(exc)) from None
    message = ""
    if decoded.rejected:
        message = f"{decoded.rejected} span(s) rejected: " + "; ".join(decoded.errors)
        log.warning("OTLP: %s", message)
    return otlp.encode_response(kind, decoded.rejected, message)


async def traces_endpoint(request: Request) -> Response:
    store: LightningStore = request.app.state.store
    max_bytes: int = request.app.state.max_body_bytes
    state = request.app.state
    kind = None
    try:
        kind = otlp.media_type(request.headers.get("content-type"))
        if state.exports >= MAX_CONCURRENT_EXPORTS:  # the event loop is one thread: no lock needed
            raise otlp.OtlpError(429, f"more than {MAX_CONCURRENT_EXPORTS} exports at once: retry later")
        state.exports += 1
        try:
            body = await read_body(request, max_bytes)
            encoding = request.headers.get("content-encoding")
            answer = await run_in_threadpool(_ingest, store, body, kind, encoding, max_bytes)
        finally:
            state.exports -= 1
    except (otlp.OtlpError, LimitError) as exc:
        content, media = otlp.encode_error(kind, exc.status, exc.message)
        headers = {"Retry-After": "1"} if exc.status in (429, 503) else None
        return Response(content, status_code=exc.status, media_type=media, headers=headers)
    except ClientDisconnect:
        return Response(status_code=400)
    return Response(answer, media_type=kind)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Routing's own refusals (no such path, wrong method) as JSON, like every other answer."""
    assert isinstance(exc, HTTPException)  # registered for HTTPException only
    return JSONResponse({"error": "HTTPException", "message": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok", "store": type(request.app.state.store).__name__})


def create_app(
    store: LightningStore, *, max_body_bytes: int = MAX_BODY_BYTES, token: str | None = None
) -> Starlette:
    """The store server's ASGI app, serving ``store``; with a `token`, requests must present it."""
    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            *store_routes(),
            Route("/v1/traces", traces_endpoint, methods=["POST"]),
        ],
        middleware=[Middleware(BearerTokenMiddleware, token=token, hint=f"this store server needs its token ({TOKEN_ENV})")]
        if token
        else [],
        exception_handlers={HTTPException: _http_error},
    )
    app.state.store = store
    app.state.max_body_bytes = max_body_bytes
    app.state.exports = 0  # OTLP exports in progress
    return app


def serve_collector(
    host: str = "127.0.0.1",
    port: int = 4318,
    store_url: str | None = None,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    grpc_port: int | None = None,
    token: str | None = None,
    heartbeat_timeout: float | None = None,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    verbose: bool = False,
) -> None:
    """Run the store server in the foreground until interrupted (``agent-lightning collector``).

    ``grpc_port`` (e.g. 4317) also receives OTLP/gRPC, for SDKs left on their gRPC default. Prints
    one line with its URL once listening; ``verbose`` logs every request. ``heartbeat_timeout``
    (seconds) is the store's; ``ssl_certfile``/``ssl_keyfile`` serve HTTPS (the HTTP side only).
    Raises `agl_core.server.access.AccessError` before opening anything when `host` is not a loopback
    address and there is no token (argument or ``AGL_STORE_TOKEN``).
    """
    from agl_core.server.foreground import access_note, run_foreground

    token = token or os.environ.get(TOKEN_ENV) or None
    check_bind(host, token, service="the store", token_env=TOKEN_ENV)
    store = LightningStore(store_url, **({} if heartbeat_timeout is None else {"heartbeat_timeout": heartbeat_timeout}))
    if isinstance(store, HttpStore):
        store.close()
        raise ValueError("the collector needs a local store (sqlite:///…, memory://, postgresql://…), not http://")
    grpc_server, grpc = None, ""
    if grpc_port is not None:
        from agl_core.server.grpc_receiver import start_grpc_receiver

        grpc_server, bound = start_grpc_receiver(store, host, grpc_port, token=token)
        grpc = f", OTLP/gRPC on port {bound}"
    line = f"collector at {{url}} (store API, OTLP/HTTP at /v1/traces{grpc}; {access_note(token, TOKEN_ENV)}; store {store!r})"
    try:
        app = create_app(store, max_body_bytes=max_body_bytes, token=token)
        run_foreground(app, host, port, start_line=line, verbose=verbose, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)
    finally:
        if grpc_server is not None:
            grpc_server.stop(grace=2).wait()
        store.close()
