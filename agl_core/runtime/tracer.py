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

from agl_core.runtime.attempt import attempt_lifecycle
from agl_core.runtime.telemetry import default_store
from agl_core.tracing import genai
from agl_core.tracing.autoinstrument import ensure_instrumented
from agl_core.tracing.context import RolloutContext, current_rollout


class _Trace:
    def __init__(self, name: str, input: Any = None, task_id: str | None = None) -> None:
        self.name, self.input, self.task_id = name, input, task_id
        self.rollout: RolloutContext | None = None
        self.span: OtelSpan | None = None
        self._stack: contextlib.ExitStack | None = None

    def set_output(self, output: Any) -> None:
        """Record the agent's output on the root span."""
        if self.span is not None:
            genai.record_output(self.span, output)

    # --- context manager ---------------------------------------------------------------------
    def __enter__(self) -> "_Trace":
        ensure_instrumented()
        stack = contextlib.ExitStack()
        if current_rollout() is None:  # a rollout of our own
            store = default_store()
            attempted = store.start_rollout(self.input, task_id=self.task_id, metadata={"agent": self.name})
            attempt = stack.enter_context(
                attempt_lifecycle(
                    store, attempted.rollout_id, attempted.attempt.attempt_id, agent=self.name, input=self.input
                )
            )
            self.span = attempt.span
        else:  # inside a runner's rollout
            self.span = stack.enter_context(genai.agent_span(self.name, input=self.input))
        self.rollout = current_rollout()
        self._stack = stack
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        assert self._stack is not None
        stack, self._stack = self._stack, None
        stack.__exit__(exc_type, exc, tb)  # fails the span on `exc`; ends the attempt if ours

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

