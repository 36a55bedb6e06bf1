"""One-line emitters: rewards, messages, objects, exceptions, annotations and tool-using LLM calls.

Each records a span in the current rollout; outside a rollout it records a standalone trace.
"""

from __future__ import annotations

import os
import traceback
from typing import Any, Mapping, Sequence

from agl_core.tracing import genai, semconv
from agl_core.tracing.autoinstrument import ensure_instrumented
from agl_core.tracing.context import current_rollout
from agl_core.tracing.convert import json_attr
from agl_core.tracing.messages import chat_request_attributes, openai_response_to_genai
from agl_core.tracing.provider import get_tracer
from agl_core.types import LLMEndpoint, check_reward


def _record(name: str, attributes: Mapping[str, Any]) -> None:
    if current_rollout() is None:  # a standalone trace: nothing may have instrumented yet
        ensure_instrumented()
    with get_tracer().start_as_current_span(name) as span:
        span.set_attributes({k: v for k, v in attributes.items() if v is not None})


def emit_reward(value: float, *, name: str = "reward", attributes: Mapping[str, Any] | None = None) -> float:
    """Record a reward for the current rollout. NaN, inf and non-numbers raise ValueError."""
    reward = check_reward(value)
    _record(
        semconv.SPAN_REWARD,
        {**(attributes or {}), semconv.AGL_REWARD_VALUE: reward, semconv.AGL_REWARD_NAME: name},
    )
    return reward


def emit_message(message: str, *, attributes: Mapping[str, Any] | None = None) -> None:
    _record(semconv.SPAN_MESSAGE, {**(attributes or {}), semconv.AGL_MESSAGE_BODY: str(message)})


def emit_object(obj: Any, *, attributes: Mapping[str, Any] | None = None) -> None:
    _record(semconv.SPAN_OBJECT, {**(attributes or {}), semconv.AGL_OBJECT_JSON: json_attr(obj)})


def emit_exception(exc: BaseException, *, attributes: Mapping[str, Any] | None = None) -> None:
    with get_tracer().start_as_current_span(semconv.SPAN_EXCEPTION, record_exception=False) as span:
        span.set_attributes(
            {
                **(attributes or {}),
                semconv.EXCEPTION_TYPE: type(exc).__qualname__,
                semconv.EXCEPTION_MESSAGE: str(exc),
                semconv.EXCEPTION_STACKTRACE: "".join(traceback.format_exception(exc)),
            }
        )
        genai.fail(span, f"{type(exc).__name__}: {exc}")  # the attributes above hold the exception


def emit_annotation(annotations: Mapping[str, Any]) -> None:
    """Attach free-form key/values (numbers, strings, bools) to the rollout as an annotation span."""
    _record(
        semconv.SPAN_ANNOTATION,
        {
            semconv.AGL_ANNOTATION_PREFIX + k: (v if isinstance(v, (str, int, float, bool)) else json_attr(v))
            for k, v in annotations.items()
        },
    )


def current_llm_endpoint() -> LLMEndpoint | None:
    """The first LLM endpoint among the current rollout's resources, if any."""
    rollout = current_rollout()
    for resource in (rollout.resources if rollout else {}).values():
        if isinstance(resource, LLMEndpoint):
            return resource
    return None


def openai_client_for_rollout(async_client: bool = False) -> Any:
    """An `openai` client pointed at the rollout's LLM endpoint (else OPENAI_BASE_URL/OPENAI_API_KEY)."""
    try:
        import openai
    except ImportError:
        raise ImportError("this needs the openai client: pip install 'agentlightning[openai]'") from None
    rollout = current_rollout()
    endpoint = current_llm_endpoint()
    kwargs: dict[str, Any] = {}
    if endpoint is not None:
        kwargs["base_url"] = endpoint.base_url(rollout.rollout_id, rollout.attempt_id) if rollout else endpoint.endpoint
        kwargs["api_key"] = endpoint.api_key or os.environ.get("OPENAI_API_KEY") or "agl-local"
    else:
        kwargs["api_key"] = os.environ.get("OPENAI_API_KEY") or "agl-local"
    cls = openai.AsyncOpenAI if async_client else openai.OpenAI
    return cls(**kwargs)


def emit_tool_call(
    model: str | None,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    context: Any = None,
    **request: Any,
) -> Any:
    """Run one chat completion with `tools` and record it as a ``chat`` span; returns the response.

    The endpoint is the current rollout's LLM resource, else OPENAI_BASE_URL / OPENAI_API_KEY;
    `model` defaults to that resource's model. `context` (any JSON-able value) is kept on the span.
    """
    endpoint = current_llm_endpoint()
    model = model or (endpoint.model if endpoint else None)
    if not model:
        raise ValueError("emit_tool_call needs a model: pass one or run inside a rollout with an LLM resource")
    client = openai_client_for_rollout()
    attrs = chat_request_attributes(model, list(messages), tools)
    if context is not None:
        attrs[semconv.AGL_TOOL_CALL_CONTEXT] = json_attr(context)
    kwargs = dict(request)
    if tools:
        kwargs["tools"] = list(tools)
    with genai.chat_span(model, attributes=attrs) as span:
        # traceparent + baggage of the chat span: `serve` joins this trace
        kwargs["extra_headers"] = genai.inject_headers(kwargs.pop("extra_headers", None))
        response = client.chat.completions.create(model=model, messages=list(messages), **kwargs)
        if span is not None:
            span.set_attributes(openai_response_to_genai(response))
    return response
