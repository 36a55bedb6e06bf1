"""What ``serve`` records on the ``chat {model}`` span of every call (see the package docstring)."""

from __future__ import annotations

from typing import Any

from agl_core.tracing import semconv
from agl_core.tracing.convert import json_attr
from agl_core.tracing.messages import chat_request_attributes, openai_response_to_genai

from .protocol import Request
from .responses import Result

#: ``gen_ai.provider.name`` of the spans ``serve`` records.
PROVIDER = "agentlightning"


def span_attributes(req: Request, result: Result, body: dict[str, Any]) -> dict[str, Any]:
    """The ``chat`` span's attributes for a request, what it produced and the body answered."""
    if req.kind == "chat":
        attrs = chat_request_attributes(req.model, req.messages, req.tools, provider=PROVIDER)
        attrs.update(openai_response_to_genai(body))
    else:  # a raw prompt is recorded as one user message, its text as the assistant's
        prompt = req.prompt if isinstance(req.prompt, str) else ""
        attrs = chat_request_attributes(req.model, [{"role": "user", "content": prompt}], provider=PROVIDER)
        as_chat = {
            **body,
            "choices": [
                {"message": {"role": "assistant", "content": c["text"]}, "finish_reason": c["finish_reason"]}
                for c in body["choices"]
            ],
        }
        attrs.update(openai_response_to_genai(as_chat))
    attrs[semconv.GEN_AI_REQUEST_TEMPERATURE] = req.temperature
    attrs[semconv.GEN_AI_REQUEST_TOP_P] = req.top_p
    if req.max_tokens is not None:
        attrs[semconv.GEN_AI_REQUEST_MAX_TOKENS] = req.max_tokens
    if result.prompt_token_ids is not None:
        attrs[semconv.AGL_PROMPT_TOKEN_IDS] = result.prompt_token_ids
    first = result.choices[0] if result.choices else None
    if first is not None and first.token_ids is not None:
        attrs[semconv.AGL_RESPONSE_TOKEN_IDS] = first.token_ids
        if first.logprobs is not None:
            attrs[semconv.AGL_RESPONSE_LOGPROBS] = first.logprobs
    if len(result.choices) > 1 and all(c.token_ids is not None for c in result.choices):
        attrs[semconv.AGL_RESPONSE_CHOICES_TOKEN_IDS] = json_attr([c.token_ids for c in result.choices])
        attrs[semconv.AGL_RESPONSE_CHOICES_LOGPROBS] = json_attr([c.logprobs for c in result.choices])
    if result.policy_version is not None:
        attrs[semconv.AGL_POLICY_VERSION] = result.policy_version
    return attrs
