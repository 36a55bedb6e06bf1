"""OpenAI chat messages <-> OpenTelemetry GenAI message JSON (``[{role, parts: [...]}]``)."""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from agl_core.tracing import semconv
from agl_core.tracing.convert import json_attr, parse_json_attr


def _as_dict(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(exclude_none=True)
    return obj


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, Mapping))


def openai_message_to_genai(message: Mapping[str, Any]) -> dict[str, Any]:
    message = _as_dict(message)
    role = message.get("role", "user")
    parts: list[dict[str, Any]] = []
    if role == "tool":
        parts.append(
            {"type": "tool_call_response", "id": message.get("tool_call_id"), "response": _text(message.get("content"))}
        )
    else:
        text = _text(message.get("content"))
        if text:
            parts.append({"type": "text", "content": text})
        for call in message.get("tool_calls") or []:
            call = _as_dict(call)
            fn = call.get("function", {})
            parts.append(
                {
                    "type": "tool_call",
                    "id": call.get("id"),
                    "name": fn.get("name"),
                    "arguments": parse_json_attr(fn.get("arguments")),
                }
            )
    out: dict[str, Any] = {"role": role, "parts": parts}
    if message.get("name"):
        out["name"] = message["name"]
    return out


def openai_to_genai(messages: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split OpenAI messages into GenAI input messages and system instructions."""
    inputs, system = [], []
    for message in messages:
        message = _as_dict(message)
        if message.get("role") in ("system", "developer"):
            system.append({"type": "text", "content": _text(message.get("content"))})
        else:
            inputs.append(openai_message_to_genai(message))
    return inputs, system


def genai_to_openai(messages: Sequence[Mapping[str, Any]], system: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """GenAI messages (plus system instructions) back to OpenAI chat messages."""
    out: list[dict[str, Any]] = []
    if system:
        out.append({"role": "system", "content": "".join(p.get("content", "") for p in system)})
    for message in messages:
        role = message.get("role", "user")
        text, calls = [], []
        for part in message.get("parts", []):
            kind = part.get("type")
            if kind == "text":
                text.append(str(part.get("content", "")))
            elif kind == "tool_call":
                args = part.get("arguments")
                calls.append(
                    {
                        "id": part.get("id"),
                        "type": "function",
                        "function": {
                            "name": part.get("name"),
                            "arguments": args if isinstance(args, str) else json.dumps(args),
                        },
                    }
                )
            elif kind == "tool_call_response":
                out.append(
                    {"role": "tool", "tool_call_id": part.get("id"), "content": str(part.get("response", ""))}
                )
        if role == "tool":
            continue
        if role == "system":
            out.append({"role": "system", "content": "".join(text)})
            continue
        msg: dict[str, Any] = {"role": role, "content": "".join(text) if text or not calls else None}
        if calls:
            msg["tool_calls"] = calls
        out.append(msg)
    return out


def openai_response_to_genai(response: Any) -> dict[str, Any]:
    """Span attributes for a chat completion response (object or dict)."""
    data = _as_dict(response) or {}
    outputs, reasons = [], []
    for choice in data.get("choices", []):
        msg = openai_message_to_genai(choice.get("message") or {"role": "assistant"})
        if choice.get("finish_reason"):
            msg["finish_reason"] = choice["finish_reason"]
            reasons.append(choice["finish_reason"])
        outputs.append(msg)
    attrs: dict[str, Any] = {semconv.GEN_AI_OUTPUT_MESSAGES: json_attr(outputs)}
    if reasons:
        attrs[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
    return attrs | response_metadata(data, "prompt_tokens", "completion_tokens")


def response_metadata(data: Mapping[str, Any], input_tokens_key: str, output_tokens_key: str) -> dict[str, Any]:
    """Response model, id and token usage (read from ``data["usage"]`` under the given keys) of a
    response as a dict, for span attributes; what the response lacks is left out."""
    attrs: dict[str, Any] = {}
    if data.get("model"):
        attrs[semconv.GEN_AI_RESPONSE_MODEL] = data["model"]
    if data.get("id"):
        attrs[semconv.GEN_AI_RESPONSE_ID] = data["id"]
    usage = data.get("usage") or {}
    if usage.get(input_tokens_key) is not None:
        attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS] = usage[input_tokens_key]
    if usage.get(output_tokens_key) is not None:
        attrs[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] = usage[output_tokens_key]
    return attrs


def chat_request_attributes(model: str | None, messages: Sequence[Mapping[str, Any]], tools: Any = None, provider: str = "openai") -> dict[str, Any]:
    """Span attributes for a chat request: model, input messages, system instructions, tools."""
    inputs, system = openai_to_genai(messages)
    attrs: dict[str, Any] = {
        semconv.GEN_AI_OPERATION_NAME: semconv.OP_CHAT,
        semconv.GEN_AI_PROVIDER_NAME: provider,
        semconv.GEN_AI_INPUT_MESSAGES: json_attr(inputs),
    }
    if model:
        attrs[semconv.GEN_AI_REQUEST_MODEL] = model
    if system:
        attrs[semconv.GEN_AI_SYSTEM_INSTRUCTIONS] = json_attr(system)
    if tools:
        attrs[semconv.GEN_AI_TOOL_DEFINITIONS] = json_attr([_as_dict(t) for t in tools])
    return attrs
