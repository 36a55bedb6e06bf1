"""`agl.tracer.trace(name, input)`: trace one agent run as a rollout, with one line.

Usable as a (sync or async) context manager and as a decorator. Inside a runner it joins the
runner's rollout; elsewhere it opens a rollout of its own in the configured store, so that
``with agl.tracer.trace("my-agent", task): ...`` is all a user needs to find their run, its spans
and its reward in the store.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from typing import Any, Callable

from opentelemetry.trace import Span as OtelSpan
from opentelemetry.trace import Status, StatusCode

from agl_core.runtime.heartbeat import Heartbeat
from agl_core.runtime.telemetry import (
    default_store,
    flush,
    register_rollout_store,
    release_rollout_store,
)
from agl_core.tracing import semconv
from agl_core.tracing.context import RolloutContext, current_rollout, rollout_context
from agl_core.tracing.convert import json_attr
from agl_core.tracing.provider import get_tracer


class _Trace:
    def __init__(self, name: str, input: Any = None, task_id: str | None = None) -> None:
        self.name, self.input, self.task_id = name, input, task_id
        self.rollout: RolloutContext | None = None
        self.span: OtelSpan | None = None
        self._stack: contextlib.ExitStack | None = None
        self._owned = False

    def set_output(self, output: Any) -> None:
        """Record the agent's output on the root span."""
        if self.span is not None and output is not None:
            self.span.set_attribute(semconv.AGL_ROLLOUT_OUTPUT, json_attr(output))

    # --- context manager ---------------------------------------------------------------------
    def __enter__(self) -> "_Trace":
        stack = contextlib.ExitStack()
        rollout = current_rollout()
        if rollout is None:
            store = default_store()
            attempted = store.start_rollout(self.input, task_id=self.task_id, metadata={"agent": self.name})
            rollout = RolloutContext(attempted.rollout_id, attempted.attempt.attempt_id, store=store)
            register_rollout_store(rollout.rollout_id, store)
            stack.enter_context(Heartbeat(store, rollout.rollout_id, rollout.attempt_id))
            self._owned = True
            stack.enter_context(rollout_context(rollout))
        self.rollout = rollout
        self.span = stack.enter_context(
            get_tracer().start_as_current_span(
                semconv.agent_span_name(self.name), record_exception=False, set_status_on_exception=False
            )
        )
        self.span.set_attributes(
            {semconv.GEN_AI_OPERATION_NAME: semconv.OP_INVOKE_AGENT, semconv.GEN_AI_AGENT_NAME: self.name}
        )
        if self.input is not None:
            self.span.set_attribute(semconv.AGL_ROLLOUT_INPUT, json_attr(self.input))
        self._stack = stack
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        assert self._stack is not None and self.span is not None and self.rollout is not None
        if exc is not None:
            self.span.record_exception(exc)
            self.span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        stack, self._stack = self._stack, None
        stack.close()  # ends the span, the rollout context and the heartbeat
        if self._owned:
            store = self.rollout.store
            flush()
            status = "failed" if exc is not None else "succeeded"
            error = f"{type(exc).__name__}: {exc}" if exc is not None else None
            store.update_attempt(self.rollout.rollout_id, self.rollout.attempt_id, status, error=error)
            release_rollout_store(self.rollout.rollout_id)

    async def __aenter__(self) -> "_Trace":
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)


class Tracer:
    """The object behind ``agl.tracer``."""

    def trace(self, name: str, input: Any = None, *, task_id: str | None = None) -> Any:
        """Context manager (``with``/``async with``) or decorator (``@agl.tracer.trace("name")``).

        As a decorator, the input is the call's arguments (unless `input` is given) and the
        output is the return value.
        """
        return _TraceFactory(name, input, task_id)


class _TraceFactory:
    def __init__(self, name: str, input: Any, task_id: str | None) -> None:
        self.name, self.input, self.task_id = name, input, task_id
        self._active: list[_Trace] = []

    def _new(self, input: Any) -> _Trace:
        return _Trace(self.name, input, self.task_id)

    def __enter__(self) -> _Trace:
        self._active.append(self._new(self.input))
        return self._active[-1].__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._active.pop().__exit__(*exc)

    async def __aenter__(self) -> _Trace:
        return self.__enter__()

    async def __aexit__(self, *exc: Any) -> None:
        self.__exit__(*exc)

    def _call_input(self, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        if self.input is not None:
            return self.input
        bound = inspect.signature(fn).bind_partial(*args, **kwargs)
        return {k: v for k, v in bound.arguments.items() if k != "self"}

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self._new(self._call_input(fn, args, kwargs)) as run:
                    result = await fn(*args, **kwargs)
                    run.set_output(result)
                    return result

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._new(self._call_input(fn, args, kwargs)) as run:
                result = fn(*args, **kwargs)
                run.set_output(result)
                return result

        return wrapper


tracer = Tracer()

