"""`ModelServer`: the HTTP side of ``serve`` (routes, request handling, streaming, the server's lifecycle)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from typing import Any, Callable, Iterator

from opentelemetry import baggage, trace
from opentelemetry.trace import Span, SpanKind
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agl_core.runtime.telemetry import configure
from agl_core.server.access import BearerTokenMiddleware, check_bind
from agl_core.server.background import UvicornThread
from agl_core.server.limits import LimitError, parse_json, read_body
from agl_core.store.base import LightningStore
from agl_core.tracing import genai, semconv
from agl_core.tracing.genai import fail, inject_headers, start_chat_span
from agl_core.tracing.provider import get_tracer
from agl_core.types import LLMEndpoint

from .backends import LocalBackend, ProxyBackend, StreamedReply, UpstreamError
from .engine import DEFAULT_BATCH_WINDOW_S, DEFAULT_MAX_BATCH_SIZE, BatchedGenerator
from .protocol import BadRequest, Request, parse_request
from .responses import (
    Result,
    TextStream,
    chat_body,
    completion_body,
    final_chunks,
    stream_chunk,
)
from .spans import PROVIDER, span_attributes

log = logging.getLogger("agentlightning.serve")

#: Where ``agent-lightning serve`` reads its API key from when ``--api-key`` is not given.
API_KEY_ENV = "AGL_SERVE_API_KEY"


def _sse(chunk: dict[str, Any]) -> str:
    return f"data: {json.dumps(chunk)}\n\n"


def _error(status: int, message: str, kind: str = "server_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": None}}, status_code=status)


class ModelServer:
    """An OpenAI-compatible server in a background thread of this process.

    ``ModelServer(model, tokenizer)`` serves a transformers model (on the model's device);
    ``ModelServer(proxy="http://vllm:8000/v1")`` forwards to an upstream instead. Spans go through
    this process's OpenTelemetry setup: `store`, when given, becomes its default span store
    (``agl_core.runtime.telemetry.configure``) when the server starts; rollouts registered
    in-process keep their own store.

    Building one binds nothing and starts nothing: `start` (or ``with``) configures the spans' store,
    starts the engine's thread and binds ``host:port``; `base_url` is known from then on.

    Defaults: ``port=0`` picks a free port; ``max_batch_size=64`` sequences per batch;
    ``batch_window_s=0`` (a lone request starts at once; later ones join it). With an `api_key`, every
    request must present it as ``Authorization: Bearer`` (what OpenAI clients send); bound beyond
    loopback, the server refuses to start without one (`agl_core.server.access`).
    """

    def __init__(
        self,
        model: Any = None,
        tokenizer: Any = None,
        *,
        model_name: str = "policy",
        store: LightningStore | str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        policy_version: int | None = 0,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        batch_window_s: float = DEFAULT_BATCH_WINDOW_S,
        proxy: str | None = None,
        proxy_api_key: str | None = None,
        api_key: str | None = None,
    ) -> None:
        if (model is None) == (proxy is None):
            raise ValueError("give either a model (with its tokenizer) or a proxy URL")
        check_bind(host, api_key, service="the model", token_env=API_KEY_ENV, flag="--api-key")
        self.api_key = api_key
        self.store = store
        self.host, self.port = host, port
        self.model_name = model_name
        self.tokenizer = tokenizer
        self.engine: BatchedGenerator | None = None
        self._proxy_version = policy_version
        self._version_lock = threading.RLock()
        if model is not None:
            if tokenizer is None:
                raise ValueError("a local model needs its tokenizer")
            self.engine = BatchedGenerator(model, tokenizer, max_batch_size=max_batch_size, batch_window_s=batch_window_s)
            self.engine.version = policy_version
            self.backend: LocalBackend | ProxyBackend = LocalBackend(self.engine, tokenizer)
        else:
            self.backend = ProxyBackend(proxy, api_key=proxy_api_key)  # type: ignore[arg-type]
        #: ``hook(request, rollout_id, attempt_id) -> request``, called on every request before
        #: generation: lets a trainer impose its sampling (temperature, seeds) on agents it does not own.
        self.request_hook: Callable[[Request, str | None, str | None], Request] | None = None
        self._tracer = get_tracer()
        self._http: UvicornThread | None = None

    # --- policy -------------------------------------------------------------------------------
    @property
    def policy_version(self) -> int | None:
        return self.engine.version if self.engine is not None else self._proxy_version

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No generation runs inside this block (use it around an in-place optimizer step)."""
        with self.engine.paused() if self.engine is not None else self._version_lock:
            yield

    def set_policy(self, model: Any = None, version: int | None = None) -> int | None:
        """Switch to `model` (default: keep the current, updated in place) and `version`
        (default: the current one + 1) between two batches; returns the new version."""
        with self.paused():
            current = self.policy_version
            new = version if version is not None else (current or 0) + 1
            if self.engine is not None:
                if model is not None:
                    self.engine.set_model(model)
                self.engine.version = new
            else:
                self._proxy_version = new
            return new

    # --- addresses ----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self._http is None:
            raise RuntimeError("the server has no address before it starts: call start() or use it in a with block")
        return f"http://{self.host}:{self.port}/v1"

    def endpoint(self, rollout_scoped: bool = True) -> LLMEndpoint:
        """The resource runners give their agents: this server, its model name and policy version."""
        return LLMEndpoint(
            endpoint=self.base_url,
            model=self.model_name,
            api_key=self.api_key or "agl",
            policy_version=self.policy_version,
            rollout_scoped=rollout_scoped,
        )

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> "ModelServer":
        """Bind ``host:port`` (``0``: a free port, then in `port`) and serve until `stop`."""
        if self._http is not None:
            raise RuntimeError(f"the server is already running at {self.base_url}")
        configure(self.store)
        http = UvicornThread(self.app(), self.host, self.port, name="agl-serve", timeout_keep_alive=30)
        if self.engine is not None:
            self.engine.start()
        try:
            http.start(timeout)
        except BaseException:
            http.stop()
            if self.engine is not None:
                self.engine.stop()
            raise
        self._http, self.host, self.port = http, http.host, http.port
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._http is not None:
            self._http.stop(timeout)
            self._http = None
        if self.engine is not None:
            self.engine.stop()

    def __enter__(self) -> "ModelServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- HTTP ---------------------------------------------------------------------------------
    def app(self) -> Starlette:
        routes = []
        for prefix in ("", "/rollout/{rollout_id}/attempt/{attempt_id}"):
            routes += [
                Route(prefix + "/v1/chat/completions", self._chat, methods=["POST"]),
                Route(prefix + "/v1/completions", self._completions, methods=["POST"]),
                Route(prefix + "/v1/models", self._models, methods=["GET"]),
            ]
        routes.append(Route("/health", lambda _: JSONResponse({"ok": True}), methods=["GET"]))
        hint = f"this server needs its API key ({API_KEY_ENV}): pass it as the client's api_key"
        middleware = [Middleware(BearerTokenMiddleware, token=self.api_key, hint=hint)] if self.api_key else []
        return Starlette(routes=routes, middleware=middleware)

    async def _models(self, request: HttpRequest) -> Response:
        model = {"id": self.model_name, "object": "model", "created": 0, "owned_by": PROVIDER}
        return JSONResponse({"object": "list", "data": [model]})

    async def _chat(self, request: HttpRequest) -> Response:
        return await self._handle(request, "chat")

    async def _completions(self, request: HttpRequest) -> Response:
        return await self._handle(request, "completion")

    @staticmethod
    def _parent_context(request: HttpRequest) -> Any:
        """The caller's trace context; a rollout-scoped URL names the rollout explicitly."""
        return genai.extract_context(
            request.headers,
            rollout_id=request.path_params.get("rollout_id"),
            attempt_id=request.path_params.get("attempt_id"),
        )

    async def _handle(self, request: HttpRequest, kind: str) -> Response:
        try:
            req = parse_request(parse_json(await read_body(request) or b"null"), kind)
        except BadRequest as exc:
            return JSONResponse(exc.body(), status_code=400)
        except LimitError as exc:
            return _error(exc.status, exc.message, "invalid_request_error")
        except ValueError as exc:  # not JSON, or not UTF-8
            return _error(400, f"the request body is not valid JSON: {exc}", "invalid_request_error")
        parent = self._parent_context(request)
        if self.request_hook is not None:
            ids = (baggage.get_baggage(semconv.AGL_ROLLOUT_ID, parent), baggage.get_baggage(semconv.AGL_ATTEMPT_ID, parent))
            req = self.request_hook(req, *(str(i) if i else None for i in ids))
        span = start_chat_span(req.model, context=parent, kind=SpanKind.SERVER, tracer=self._tracer)
        if req.stream and isinstance(self.backend, LocalBackend):
            return self._stream(req, kind, span)
        headers = inject_headers(context=trace.set_span_in_context(span, parent))
        if req.stream:
            return await self._relay(req, kind, span, headers)
        try:
            result = await self.backend.run(req, headers)
            body = self._record(span, req, kind, result)
        except Exception as exc:
            return self._failed(span, exc)
        span.end()
        return JSONResponse(body)

    async def _relay(self, req: Request, kind: str, span: Span, headers: dict[str, str]) -> Response:
        """Relay an upstream's stream chunk by chunk; the span is recorded when it ends."""
        backend = self.backend
        assert isinstance(backend, ProxyBackend)
        try:
            chunks = await backend.open_stream(req, headers)
        except Exception as exc:
            return self._failed(span, exc)
        reply = StreamedReply(kind)

        async def events() -> Any:
            try:
                async for chunk in chunks:
                    if "error" in chunk:  # the upstream failed after its headers: pass it on
                        error = chunk["error"]
                        message = error.get("message", error) if isinstance(error, dict) else error
                        fail(span, f"upstream: {str(message)[:500]}")
                        yield _sse(chunk)
                        return
                    reply.add(chunk)
                    if chunk.get("choices") or "usage" not in chunk or req.include_usage:
                        yield _sse(chunk)  # not the usage chunk we asked for on our span's account
                self._record(span, req, kind, backend.result(req, reply.body()))
            except Exception as exc:  # headers went out already: the error comes as an event
                log.error("relaying the upstream stream failed", exc_info=exc)
                fail(span, exc)
                yield _sse({"error": {"message": f"upstream stream failed: {type(exc).__name__}: {exc}", "type": "upstream_error"}})
                return
            finally:
                span.end()
                await chunks.aclose()  # a client that went away frees the upstream connection now
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    def _record(self, span: Span, req: Request, kind: str, result: Result) -> dict[str, Any]:
        """The response body for `result`, its attributes set on `span`."""
        body = chat_body(req, result, self.tokenizer) if kind == "chat" else completion_body(req, result, self.tokenizer)
        span.set_attributes(span_attributes(req, result, body))
        return body

    @staticmethod
    def _failed(span: Span, exc: Exception) -> Response:
        """End `span` as failed; the error response for `exc`."""
        if isinstance(exc, (BadRequest, UpstreamError)):
            fail(span, str(exc))
            span.end()
            if isinstance(exc, BadRequest):
                return JSONResponse(exc.body(), status_code=400)
            return JSONResponse(exc.body, status_code=exc.status)
        # the server answers the next request whatever happened to this one
        log.error("generation failed", exc_info=exc)
        fail(span, exc)
        span.end()
        return _error(500, f"generation failed: {type(exc).__name__}: {exc}")

    def _stream(self, req: Request, kind: str, span: Span) -> Response:
        """Stream a local generation token by token; the span is recorded when it finishes, even
        when the client has gone."""
        assert isinstance(self.backend, LocalBackend)
        loop = asyncio.get_running_loop()
        tokens: asyncio.Queue[tuple[int, int] | None] = asyncio.Queue()

        def on_token(index: int, token: int) -> None:  # in the engine's thread
            loop.call_soon_threadsafe(tokens.put_nowait, (index, token))

        try:
            pending = self.backend.submit(req, on_token)
        except Exception as exc:
            return self._failed(span, exc)
        response_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())  # known before the result
        chunk_id = response_id if kind == "chat" else response_id.replace("chatcmpl-", "cmpl-")
        base = {"id": chunk_id, "created": created, "model": req.model}

        async def finish() -> dict[str, Any]:
            """The response body, or the error body a non-streamed request would get."""
            try:
                result = await pending
                result.response_id, result.created = response_id, created
                body = self._record(span, req, kind, result)
            except Exception as exc:
                return json.loads(bytes(self._failed(span, exc).body))
            span.end()
            return body

        done = asyncio.ensure_future(finish())
        done.add_done_callback(lambda _: tokens.put_nowait(None))  # after the tokens the engine queued
        texts = [TextStream(self.tokenizer, req.stop, bool(req.tools)) for _ in range(req.n)]

        async def events() -> Any:
            if kind == "chat":
                for i in range(req.n):
                    yield _sse(stream_chunk(req, base, i, {"role": "assistant", "content": ""}))
            finished = False
            while not finished:
                items = [await tokens.get()]
                while not tokens.empty():  # all that came meanwhile: one decode per choice
                    items.append(tokens.get_nowait())
                new: dict[int, list[int]] = {}
                for item in items:
                    if item is None:
                        finished = True
                    else:
                        new.setdefault(item[0], []).append(item[1])
                for i, ids in sorted(new.items()):
                    if delta := texts[i].push(ids):
                        yield _sse(stream_chunk(req, base, i, {"content": delta}))
            body = await done
            if "error" in body:  # headers went out already: the error comes as an event
                yield _sse(body)
                return
            for chunk in final_chunks(req, body, {i: t.sent for i, t in enumerate(texts)}):
                yield _sse(chunk)
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")
