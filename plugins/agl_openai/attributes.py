"""Span attributes for OpenAI requests and responses the core's message helpers do not cover:
the Responses API and streamed chat completions (accumulated chunk by chunk)."""

from __future__ import annotations

from typing import Any, Mapping

from agl_core.tracing import semconv
from agl_core.tracing.convert import json_attr, parse_json_attr
from agl_core.tracing.messages import (
    chat_request_attributes,
    openai_response_to_genai,
    response_metadata,
)


def _as_dict(obj: Any) -> Any:
    return obj.model_dump(exclude_none=True) if hasattr(obj, "model_dump") else obj


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(
        str(p.get("text", "")) for p in content or [] if isinstance(p, Mapping) and "text" in p
    )


def _append_part(messages: list[dict[str, Any]], role: str, part: dict[str, Any]) -> None:
    if messages and messages[-1]["role"] == role and role == "assistant":
        messages[-1]["parts"].append(part)
    else:
        messages.append({"role": role, "parts": [part]})


def responses_items_to_genai(items: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Responses API input/output items as GenAI messages, plus system instructions found among them."""
    if isinstance(items, str):
        return [{"role": "user", "parts": [{"type": "text", "content": items}]}], []
    messages: list[dict[str, Any]] = []
    system: list[dict[str, Any]] = []
    for item in items or []:
        item = _as_dict(item)
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role", "user")
            text = _content_text(item.get("content"))
            if role in ("system", "developer"):
                system.append({"type": "text", "content": text})
            else:
                _append_part(messages, role, {"type": "text", "content": text})
        elif kind == "function_call":
            part = {
                "type": "tool_call",
                "id": item.get("call_id"),
                "name": item.get("name"),
                "arguments": parse_json_attr(item.get("arguments")),
            }
            _append_part(messages, "assistant", part)
        elif kind == "function_call_output":
            output = item.get("output")
            part = {"type": "tool_call_response", "id": item.get("call_id"), "response": output if isinstance(output, str) else json_attr(output)}
            messages.append({"role": "tool", "parts": [part]})
    return messages, system


def responses_request_attributes(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    model = kwargs.get("model")
    inputs, system = responses_items_to_genai(kwargs.get("input"))
    if kwargs.get("instructions"):
        system.insert(0, {"type": "text", "content": str(kwargs["instructions"])})
    attrs: dict[str, Any] = {
        semconv.GEN_AI_OPERATION_NAME: semconv.OP_CHAT,
        semconv.GEN_AI_PROVIDER_NAME: "openai",
        semconv.GEN_AI_INPUT_MESSAGES: json_attr(inputs),
    }
    if model:
        attrs[semconv.GEN_AI_REQUEST_MODEL] = str(model)
    if system:
        attrs[semconv.GEN_AI_SYSTEM_INSTRUCTIONS] = json_attr(system)
    if kwargs.get("tools"):
        attrs[semconv.GEN_AI_TOOL_DEFINITIONS] = json_attr([_as_dict(t) for t in kwargs["tools"]])
    return attrs | _sampling_attributes(kwargs, max_tokens_key="max_output_tokens")


def responses_response_attributes(response: Any) -> dict[str, Any]:
    data = _as_dict(response) or {}
    outputs, _ = responses_items_to_genai(data.get("output"))
    attrs: dict[str, Any] = {semconv.GEN_AI_OUTPUT_MESSAGES: json_attr(outputs)}
    if data.get("status"):
        attrs[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = [str(data["status"])]
    return attrs | response_metadata(data, "input_tokens", "output_tokens")


def _sampling_attributes(kwargs: Mapping[str, Any], max_tokens_key: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for key, attr in (
        ("temperature", semconv.GEN_AI_REQUEST_TEMPERATURE),
        ("top_p", semconv.GEN_AI_REQUEST_TOP_P),
        (max_tokens_key, semconv.GEN_AI_REQUEST_MAX_TOKENS),
    ):
        value = kwargs.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            attrs[attr] = value
    return attrs


def chat_completions_request_attributes(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    attrs = chat_request_attributes(kwargs.get("model"), list(kwargs.get("messages") or []), kwargs.get("tools"))
    fmt = kwargs.get("response_format")
    if isinstance(fmt, type):  # a pydantic model given to `parse`
        attrs[semconv.GEN_AI_OUTPUT_TYPE] = "json"
    elif isinstance(fmt, Mapping) and fmt.get("type"):
        attrs[semconv.GEN_AI_OUTPUT_TYPE] = "json" if "json" in str(fmt["type"]) else str(fmt["type"])
    return attrs | _sampling_attributes(kwargs, max_tokens_key="max_tokens")


class ChatStreamAccumulator:
    """Rebuilds a chat completion from its streamed chunks, so the span gets the whole answer."""

    def __init__(self) -> None:
        self.id: str | None = None
        self.model: str | None = None
        self.usage: dict[str, Any] | None = None
        self._choices: dict[int, dict[str, Any]] = {}

    def add(self, chunk: Any) -> None:
        data = _as_dict(chunk)
        if not isinstance(data, Mapping):
            return
        self.id = self.id or data.get("id")
        self.model = self.model or data.get("model")
        if data.get("usage"):
            self.usage = data["usage"]
        for choice in data.get("choices") or []:
            acc = self._choices.setdefault(
                choice.get("index", 0), {"content": [], "tool_calls": {}, "finish_reason": None}
            )
            delta = choice.get("delta") or {}
            if delta.get("content"):
                acc["content"].append(delta["content"])
            for call in delta.get("tool_calls") or []:
                slot = acc["tool_calls"].setdefault(
                    call.get("index", 0), {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
                )
                slot["id"] = call.get("id") or slot["id"]
                fn = call.get("function") or {}
                slot["function"]["name"] += fn.get("name") or ""
                slot["function"]["arguments"] += fn.get("arguments") or ""
            if choice.get("finish_reason"):
                acc["finish_reason"] = choice["finish_reason"]

    def attributes(self) -> dict[str, Any]:
        choices = []
        for index, acc in sorted(self._choices.items()):
            message: dict[str, Any] = {"role": "assistant", "content": "".join(acc["content"]) or None}
            if acc["tool_calls"]:
                message["tool_calls"] = [acc["tool_calls"][i] for i in sorted(acc["tool_calls"])]
            choices.append({"index": index, "message": message, "finish_reason": acc["finish_reason"]})
        data = {"id": self.id, "model": self.model, "choices": choices, "usage": self.usage}
        return openai_response_to_genai({k: v for k, v in data.items() if v is not None})
