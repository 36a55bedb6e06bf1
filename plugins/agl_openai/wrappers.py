"""wrapt wrappers around the openai client's request methods: one ``chat {model}`` span per request.

Rule shared by every Agent Lightning plugin (:mod:`agl_core.tracing.genai`): the *outermost*
instrumented layer that describes an LLM request owns its ``chat`` span; this layer is the
innermost, so it records a span only when nothing above did. Either way it injects W3C
``traceparent``/``baggage`` into the request headers, so a server-side span (the project's
``serve``) joins the agent's trace.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import wrapt
from opentelemetry import trace

from agl_core.tracing import genai, semconv
from agl_core.tracing.messages import openai_response_to_genai
from agl_openai.attributes import (
    ChatStreamAccumulator,
    chat_completions_request_attributes,
    responses_request_attributes,
    responses_response_attributes,
)

log = logging.getLogger("agentlightning")


class _Switch:
    """Whether the wrappers act. Clients cache bound methods (``with_raw_response`` does), so a
    wrapper can outlive ``unwrap``; switched off, it only passes the call through."""

    on = False


SWITCH = _Switch()


def inject_trace_headers(kwargs: dict[str, Any]) -> None:
    """Add ``traceparent``/``baggage`` of the current context to the request (caller's headers win)."""
    kwargs["extra_headers"] = genai.inject_headers(kwargs.get("extra_headers"))


class _Api:
    """How to describe one API family (chat completions or responses) on a span."""

    def __init__(
        self,
        request: Callable[[dict[str, Any]], dict[str, Any]],
        response: Callable[[Any], dict[str, Any]],
        accumulator: Callable[[], Any],
    ) -> None:
        self.request, self.response, self.accumulator = request, response, accumulator


class _ResponsesStreamAccumulator:
    """Keeps the final ``response`` carried by the terminal event of a Responses stream."""

    def __init__(self) -> None:
        self.response: Any = None

    def add(self, event: Any) -> None:
        if getattr(event, "type", "") in ("response.completed", "response.incomplete", "response.failed"):
            self.response = getattr(event, "response", None)

    def attributes(self) -> dict[str, Any]:
        return responses_response_attributes(self.response) if self.response is not None else {}


CHAT = _Api(chat_completions_request_attributes, openai_response_to_genai, ChatStreamAccumulator)
RESPONSES = _Api(responses_request_attributes, responses_response_attributes, _ResponsesStreamAccumulator)


def _end(span: trace.Span, attributes: Callable[[], dict[str, Any]], error: BaseException | None = None) -> None:
    try:
        if error is not None:
            genai.fail(span, error)
        else:
            span.set_attributes(attributes())
    except Exception:
        log.debug("could not describe an openai response", exc_info=True)
    finally:
        span.end()


def _is_stream(result: Any) -> bool:
    return hasattr(result, "__next__") or hasattr(result, "__anext__")


def _parsed(result: Any) -> Any:
    """The response as a dict (parsing ``with_raw_response`` results first)."""
    if type(result).__name__ == "LegacyAPIResponse":
        result = result.parse()
    if hasattr(result, "model_dump"):  # `parse` results hold user models pydantic would warn about
        return result.model_dump(exclude_none=True, warnings=False)
    return result


class _TracedStream(wrapt.ObjectProxy):  # type: ignore[misc]
    """A stream that feeds each chunk to an accumulator and ends the span when it is exhausted or closed."""

    def __init__(self, stream: Any, span: trace.Span, accumulator: Any) -> None:
        super().__init__(stream)
        self._self_span, self._self_acc, self._self_open = span, accumulator, True

    def _self_finish(self, error: BaseException | None = None) -> None:
        if self._self_open:
            self._self_open = False
            _end(self._self_span, self._self_acc.attributes, error)


class _SyncStream(_TracedStream):
    def __iter__(self) -> "_SyncStream":
        return self

    def __next__(self) -> Any:
        try:
            item = self.__wrapped__.__next__()
        except StopIteration:
            self._self_finish()
            raise
        except BaseException as exc:
            self._self_finish(exc)
            raise
        _safe_add(self._self_acc, item)
        return item

    def __enter__(self) -> "_SyncStream":
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(*exc)
        finally:
            self._self_finish()

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_finish()


class _AsyncStream(_TracedStream):
    def __aiter__(self) -> "_AsyncStream":
        return self

    async def __anext__(self) -> Any:
        try:
            item = await self.__wrapped__.__anext__()
        except StopAsyncIteration:
            self._self_finish()
            raise
        except BaseException as exc:
            self._self_finish(exc)
            raise
        _safe_add(self._self_acc, item)
        return item

    async def __aenter__(self) -> "_AsyncStream":
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(*exc)
        finally:
            self._self_finish()

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            self._self_finish()


def _safe_add(accumulator: Any, item: Any) -> None:
    try:
        accumulator.add(item)
    except Exception:
        log.debug("could not accumulate a streamed chunk", exc_info=True)


def _start(tracer: trace.Tracer, api: _Api, kwargs: dict[str, Any]) -> trace.Span | None:
    """The chat span of this request; None when an outer layer owns it (or it cannot be described)."""
    if genai.llm_span_suppressed():
        return None
    try:
        attrs = api.request(kwargs)
        return genai.start_chat_span(attrs.get(semconv.GEN_AI_REQUEST_MODEL), attributes=attrs, tracer=tracer)
    except Exception:
        log.debug("could not open a chat span", exc_info=True)
        return None


def _finish(span: trace.Span, api: _Api, result: Any, stream_cls: type) -> Any:
    if _is_stream(result):
        return stream_cls(result, span, api.accumulator())
    _end(span, lambda: api.response(_parsed(result)))
    return result


def sync_wrapper(tracer: trace.Tracer, api: _Api) -> Callable[..., Any]:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        if not SWITCH.on:
            return wrapped(*args, **kwargs)
        span = _start(tracer, api, kwargs)
        if span is None:
            inject_trace_headers(kwargs)
            return wrapped(*args, **kwargs)
        with genai.use_chat_span(span):  # a failed request fails and ends the span
            inject_trace_headers(kwargs)
            result = wrapped(*args, **kwargs)
        return _finish(span, api, result, _SyncStream)

    return wrapper


def async_wrapper(tracer: trace.Tracer, api: _Api) -> Callable[..., Any]:
    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        if not SWITCH.on:
            return await wrapped(*args, **kwargs)
        span = _start(tracer, api, kwargs)
        if span is None:
            inject_trace_headers(kwargs)
            return await wrapped(*args, **kwargs)
        with genai.use_chat_span(span):  # a failed request fails and ends the span
            inject_trace_headers(kwargs)
            result = await wrapped(*args, **kwargs)
        return _finish(span, api, result, _AsyncStream)

    return wrapper
