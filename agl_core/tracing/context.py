"""The rollout context: which rollout/attempt the current code runs for, and with what resources.

It lives in the OpenTelemetry context (a context key for in-process use, W3C baggage for other
processes), so it follows the OTel context everywhere: into asyncio tasks by itself, into threads
through :func:`enable_thread_propagation`, and over HTTP through the ``baggage`` header.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator

from opentelemetry import baggage
from opentelemetry import context as otel_context

from agl_core.tracing import semconv
from agl_core.types import Resource

_ROLLOUT_KEY = otel_context.create_key("agl-rollout")


@dataclass(frozen=True)
class RolloutContext:
    rollout_id: str
    attempt_id: str
    resources_id: str | None = None
    resources: dict[str, Resource] = field(default_factory=dict)
    store: Any = None  # the LightningStore the rollout lives in, when known in this process
    mode: str = "train"

    def attributes(self) -> dict[str, str]:
        attrs = {semconv.AGL_ROLLOUT_ID: self.rollout_id, semconv.AGL_ATTEMPT_ID: self.attempt_id}
        if self.resources_id:
            attrs[semconv.AGL_RESOURCES_ID] = self.resources_id
        return attrs


def current_rollout(ctx: otel_context.Context | None = None) -> RolloutContext | None:
    """The rollout the current code runs for, or None outside any rollout."""
    found = otel_context.get_value(_ROLLOUT_KEY, ctx)
    if isinstance(found, RolloutContext):
        return found
    rollout_id = baggage.get_baggage(semconv.AGL_ROLLOUT_ID, ctx)
    attempt_id = baggage.get_baggage(semconv.AGL_ATTEMPT_ID, ctx)
    if rollout_id and attempt_id:
        return RolloutContext(
            rollout_id=str(rollout_id),
            attempt_id=str(attempt_id),
            resources_id=baggage.get_baggage(semconv.AGL_RESOURCES_ID, ctx) or None,  # type: ignore[arg-type]
        )
    return None


def current_resources() -> dict[str, Resource]:
    """The resources (prompt templates, LLM endpoints, …) of the current rollout; {} outside one."""
    rollout = current_rollout()
    return dict(rollout.resources) if rollout else {}


@contextlib.contextmanager
def rollout_context(rollout: RolloutContext) -> Iterator[RolloutContext]:
    """Run the body as part of `rollout`: spans started inside are stamped with its ids."""
    ctx = otel_context.set_value(_ROLLOUT_KEY, rollout)
    for key, value in rollout.attributes().items():
        ctx = baggage.set_baggage(key, value, ctx)
    token = otel_context.attach(ctx)
    try:
        yield rollout
    finally:
        otel_context.detach(token)


# --- threads -----------------------------------------------------------------------------------

_patch_lock = threading.Lock()
_originals: dict[str, Any] = {}


def _run_in(ctx: otel_context.Context, fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        token = otel_context.attach(ctx)
        try:
            return fn(*args, **kwargs)
        finally:
            otel_context.detach(token)

    return wrapped


def enable_thread_propagation() -> None:
    """Make new threads and thread-pool jobs inherit the OTel context of the code that made them.

    Python's contextvars do not cross threads; agents (CrewAI, LangChain callbacks, tool pools)
    hand work to threads all the time, and their spans must stay in the rollout. Idempotent.
    """
    with _patch_lock:
        if _originals:
            return
        _originals["start"] = threading.Thread.start
        _originals["submit"] = concurrent.futures.ThreadPoolExecutor.submit

        def start(self: threading.Thread) -> None:
            self._agl_context = otel_context.get_current()  # type: ignore[attr-defined]
            run = self.run
            self.run = _run_in(self._agl_context, run)  # type: ignore[method-assign,attr-defined]
            _originals["start"](self)

        def submit(self: concurrent.futures.ThreadPoolExecutor, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            return _originals["submit"](self, _run_in(otel_context.get_current(), fn), *args, **kwargs)

        threading.Thread.start = start  # type: ignore[method-assign]
        # patching the class on purpose: every pool made by any library must carry the context
        concurrent.futures.ThreadPoolExecutor.submit = submit  # type: ignore[method-assign,assignment]
