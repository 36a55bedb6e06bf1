"""The span SDK every instrumentation layer uses: GenAI spans, their failure and their propagation.

One module owns how an ``invoke_agent`` / ``chat`` / ``execute_tool`` span is named and described,
how it fails (:func:`fail`), which layer records an LLM request, and the headers that carry the
trace to another process (:func:`inject_headers`).

The rule for LLM requests: the *outermost* instrumented layer owns the ``chat`` span. While a chat
span is current (:func:`use_chat_span`, :func:`chat_span`) inner LLM spans are suppressed, so a
framework over the openai client records one span per request, not two. A layer whose framework
makes its own chat spans says so with :func:`suppress_llm_spans`.

Context managers make the span current, fail it when the body raises (and let the error through)
and end it. The ``start_*`` functions only open a span, for callers that end it later (streams,
servers, callback handlers); the caller ends it.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping

from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from agl_core.tracing import semconv
from agl_core.tracing.convert import json_attr
from agl_core.tracing.provider import get_tracer

_SUPPRESS_LLM_SPAN_KEY = otel_context.create_key("agl-suppress-llm-span")

Attributes = Mapping[str, Any]


def _tracer(tracer: trace.Tracer | None) -> trace.Tracer:
    return tracer if tracer is not None else get_tracer()


def _merged(own: dict[str, Any], extra: Attributes | None) -> dict[str, Any]:
    return {k: v for k, v in {**own, **(extra or {})}.items() if v is not None}


# --- failure -----------------------------------------------------------------------------------


def fail(span: Span, exc: BaseException | str) -> None:
    """Mark `span` failed: ERROR status ``"{Type}: {message}"`` and the exception as an event.

    A string is a failure known only by its message (e.g. an upstream error body): it becomes
    the status description, with no exception event.
    """
    if isinstance(exc, BaseException):
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    else:
        span.set_status(Status(StatusCode.ERROR, exc))


@contextlib.contextmanager
def use_span(span: Span, *, end_on_exit: bool = True) -> Iterator[Span]:
    """Make `span` current for the body; fail it if the body raises; end it on exit.

    With ``end_on_exit=False`` the span stays open after a body that succeeded (the caller ends
    it); a failed span is always ended, as nothing more will be recorded on it.
    """
    try:
        with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
            yield span
    except BaseException as exc:
        fail(span, exc)
        span.end()
        raise
    if end_on_exit:
        span.end()


# --- suppression of inner LLM spans ------------------------------------------------------------


def llm_span_suppressed(context: otel_context.Context | None = None) -> bool:
    """True when an outer layer already owns the chat span of the LLM request being made."""
    return bool(otel_context.get_value(_SUPPRESS_LLM_SPAN_KEY, context))


@contextlib.contextmanager
def suppress_llm_spans() -> Iterator[None]:
    """Run the body as the owner of its LLM requests' chat spans: inner layers record none."""
    token = otel_context.attach(otel_context.set_value(_SUPPRESS_LLM_SPAN_KEY, True))
    try:
        yield
    finally:
        otel_context.detach(token)


def chat_context(span: Span, context: otel_context.Context | None = None) -> otel_context.Context:
    """The context an LLM request runs in: `span` current, inner LLM spans suppressed.

    For layers that attach it themselves (a callback that starts the request and another that
    ends it); everyone else uses :func:`use_chat_span`.
    """
    return otel_context.set_value(_SUPPRESS_LLM_SPAN_KEY, True, trace.set_span_in_context(span, context))


@contextlib.contextmanager
def use_chat_span(span: Span, *, end_on_exit: bool = False) -> Iterator[Span]:
    """:func:`use_span` for a chat span: inner LLM spans are suppressed in the body. By default
    the span stays open after the body (a stream ends it later)."""
    token = otel_context.attach(chat_context(span))
    try:
        with use_span(span, end_on_exit=end_on_exit):
            yield span
    finally:
        otel_context.detach(token)


# --- propagation -------------------------------------------------------------------------------


def inject_headers(
    headers: Mapping[str, str] | None = None, *, context: otel_context.Context | None = None
) -> dict[str, str]:
    """`headers` plus W3C ``traceparent`` and ``baggage`` of `context` (default: the current one),
    so a server (the project's ``serve``) joins the trace and knows the rollout. The caller's
    own headers win."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return {**carrier, **(headers or {})}


def extract_context(
    headers: Mapping[str, str], *, rollout_id: str | None = None, attempt_id: str | None = None
) -> otel_context.Context:
    """The caller's context from incoming `headers` (``traceparent``, ``baggage``), for a server
    that records the serving side of a request. A rollout named explicitly (a rollout-scoped URL)
    replaces the one in the baggage; the baggage's resources version is kept only for its own rollout."""
    ctx = propagate.extract(dict(headers))
    if rollout_id and attempt_id:
        if baggage.get_baggage(semconv.AGL_ROLLOUT_ID, ctx) != rollout_id:
            ctx = baggage.remove_baggage(semconv.AGL_RESOURCES_ID, ctx)
        ctx = baggage.set_baggage(semconv.AGL_ROLLOUT_ID, rollout_id, ctx)
        ctx = baggage.set_baggage(semconv.AGL_ATTEMPT_ID, attempt_id, ctx)
    return ctx


# --- invoke_agent ------------------------------------------------------------------------------


def agent_attributes(name: str, input: Any = None) -> dict[str, Any]:
    attrs: dict[str, Any] = {semconv.GEN_AI_OPERATION_NAME: semconv.OP_INVOKE_AGENT, semconv.GEN_AI_AGENT_NAME: name}
    if input is not None:
        attrs[semconv.AGL_ROLLOUT_INPUT] = json_attr(input)
    return attrs


def start_agent_span(
    name: str,
    *,
    input: Any = None,
    attributes: Attributes | None = None,
    context: otel_context.Context | None = None,
    tracer: trace.Tracer | None = None,
) -> Span:
    """Open ``invoke_agent {name}`` (not current; the caller ends it)."""
    return _tracer(tracer).start_span(
        semconv.agent_span_name(name), context=context, attributes=_merged(agent_attributes(name, input), attributes)
    )


@contextlib.contextmanager
def agent_span(
    name: str, *, input: Any = None, attributes: Attributes | None = None, tracer: trace.Tracer | None = None
) -> Iterator[Span]:
    """``invoke_agent {name}`` around the body; `input` is kept as ``agl.rollout.input`` JSON."""
    with use_span(start_agent_span(name, input=input, attributes=attributes, tracer=tracer)) as span:
        yield span


def record_output(span: Span, output: Any) -> None:
    """Keep an agent's output on its ``invoke_agent`` span (``agl.rollout.output``, JSON)."""
    if output is not None:
        span.set_attribute(semconv.AGL_ROLLOUT_OUTPUT, json_attr(output))


# --- chat --------------------------------------------------------------------------------------


def start_chat_span(
    model: str | None,
    *,
    context: otel_context.Context | None = None,
    kind: SpanKind = SpanKind.CLIENT,
    attributes: Attributes | None = None,
    tracer: trace.Tracer | None = None,
) -> Span:
    """Open ``chat {model}`` (not current; the caller ends it, :func:`fail` on error)."""
    own = {semconv.GEN_AI_OPERATION_NAME: semconv.OP_CHAT, semconv.GEN_AI_REQUEST_MODEL: model or None}
    return _tracer(tracer).start_span(
        semconv.chat_span_name(model), context=context, kind=kind, attributes=_merged(own, attributes)
    )


@contextlib.contextmanager
def chat_span(
    model: str | None,
    *,
    attributes: Attributes | None = None,
    context: otel_context.Context | None = None,
    kind: SpanKind = SpanKind.CLIENT,
    tracer: trace.Tracer | None = None,
) -> Iterator[Span | None]:
    """``chat {model}`` around one LLM request, or ``None`` when an outer layer owns the request
    (then record nothing). Inner LLM spans are suppressed in the body."""
    if llm_span_suppressed(context):
        yield None
        return
    span = start_chat_span(model, context=context, kind=kind, attributes=attributes, tracer=tracer)
    with use_chat_span(span, end_on_exit=True):
        yield span


# --- execute_tool ------------------------------------------------------------------------------


def tool_attributes(name: str | None, *, arguments: Any = None, call_id: str | None = None) -> dict[str, Any]:
    """`arguments` as given when a string (the model's JSON), else as JSON."""
    attrs: dict[str, Any] = {semconv.GEN_AI_OPERATION_NAME: semconv.OP_EXECUTE_TOOL, semconv.GEN_AI_TOOL_NAME: name}
    if arguments is not None:
        attrs[semconv.GEN_AI_TOOL_CALL_ARGUMENTS] = arguments if isinstance(arguments, str) else json_attr(arguments)
    if call_id:
        attrs[semconv.GEN_AI_TOOL_CALL_ID] = str(call_id)
    return attrs


def start_tool_span(
    name: str | None,
    *,
    arguments: Any = None,
    call_id: str | None = None,
    attributes: Attributes | None = None,
    context: otel_context.Context | None = None,
    tracer: trace.Tracer | None = None,
) -> Span:
    """Open ``execute_tool {name}`` (not current; the caller ends it)."""
    own = tool_attributes(name, arguments=arguments, call_id=call_id)
    return _tracer(tracer).start_span(semconv.tool_span_name(name), context=context, attributes=_merged(own, attributes))


@contextlib.contextmanager
def tool_span(
    name: str | None,
    *,
    arguments: Any = None,
    call_id: str | None = None,
    attributes: Attributes | None = None,
    tracer: trace.Tracer | None = None,
) -> Iterator[Span]:
    """``execute_tool {name}`` around the body."""
    span = start_tool_span(name, arguments=arguments, call_id=call_id, attributes=attributes, tracer=tracer)
    with use_span(span) as current:
        yield current


def tool_result_attributes(result: Any) -> dict[str, Any]:
    """A tool's result as span attributes: a string as it is, anything else as JSON."""
    return {semconv.GEN_AI_TOOL_CALL_RESULT: result if isinstance(result, str) else json_attr(result)}


def record_tool_result(span: Span, result: Any) -> None:
    span.set_attributes(tool_result_attributes(result))
