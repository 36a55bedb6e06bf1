"""The OpenAI wire format of ``serve``, inbound: a request body validated into a `Request`
(anything we cannot honour is a `BadRequest`, HTTP 400, before it is queued)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

#: Upper bound on ``n`` per request.
MAX_N = 64
#: ``max_tokens`` when the request gives none (further clamped to the model's context).
DEFAULT_MAX_TOKENS = 256

_ROLES = {"system", "developer", "user", "assistant", "tool"}
# Accepted without effect on generation (bookkeeping fields clients commonly send).
_IGNORED = {"user", "metadata", "store", "parallel_tool_calls", "service_tier", "prompt_cache_key", "safety_identifier"}
_COMMON = {"model", "temperature", "top_p", "n", "max_tokens", "stop", "seed", "stream", "stream_options",
           "frequency_penalty", "presence_penalty", "logprobs", "top_logprobs",
           # vLLM extensions, so that a `serve --proxy` in front of us gets token ids back.
           "return_token_ids", "return_tokens_as_token_ids", "ignore_eos"}  # fmt: skip
CHAT_KEYS = _COMMON | _IGNORED | {"messages", "tools", "tool_choice", "max_completion_tokens", "response_format"}
COMPLETION_KEYS = _COMMON | _IGNORED | {"prompt", "echo", "suffix"}


class BadRequest(ValueError):
    """A request we refuse with HTTP 400; the message says what to fix."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        #: OpenAI's machine-readable error code where there is one (``context_length_exceeded``).
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": "invalid_request_error", "param": self.param, "code": self.code}}


@dataclass
class Request:
    """A validated chat or text completion request."""

    kind: str  # "chat" | "completion"
    model: str
    body: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] | None = None
    prompt: str | list[int] | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    stream: bool = False
    include_usage: bool = False
    logprobs: bool = False
    top_logprobs: int = 0
    return_token_ids: bool = False
    tokens_as_ids: bool = False
    ignore_eos: bool = False


def _number(body: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise BadRequest(f"'{key}' must be a number in [{low}, {high}], got {value!r}", key)
    return float(value)


def _integer(body: Mapping[str, Any], key: str, low: int, high: int | None = None) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise BadRequest(f"'{key}' must be an integer {bound}, got {value!r}", key)
    return value


def _flag(body: Mapping[str, Any], key: str) -> bool:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise BadRequest(f"'{key}' must be a boolean, got {value!r}", key)
    return bool(value)


def _content_ok(content: Any) -> bool:
    if content is None or isinstance(content, str):
        return True
    return isinstance(content, list) and all(
        isinstance(p, Mapping) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content
    )


def _messages(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise BadRequest("'messages' must be a non-empty list of messages", "messages")
    out = []
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping) or message.get("role") not in _ROLES:
            raise BadRequest(f"{where} must be an object with 'role' one of {sorted(_ROLES)}", where)
        if not _content_ok(message.get("content")):
            raise BadRequest(f"{where}.content must be a string or a list of text parts (only text is supported)", where)
        if message.get("content") is None and not (message["role"] == "assistant" and message.get("tool_calls")):
            raise BadRequest(f"{where} has no content", where)
        calls = message.get("tool_calls")
        if calls is not None and not (
            isinstance(calls, list)
            and all(isinstance(c, Mapping) and isinstance((c.get("function") or {}).get("name"), str) for c in calls)
        ):
            raise BadRequest(f"{where}.tool_calls must be a list of {{'function': {{'name', 'arguments'}}}}", where)
        message = dict(message)
        if message["role"] == "developer":
            message["role"] = "system"
        out.append(message)
    return out


def _tools(body: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    tools, choice = body.get("tools"), body.get("tool_choice")
    if choice not in (None, "auto", "none"):
        raise BadRequest("only tool_choice 'auto' and 'none' are supported", "tool_choice")
    if tools is None or choice == "none":
        return None
    if not isinstance(tools, list) or not all(
        isinstance(t, Mapping) and isinstance((t.get("function") or {}).get("name"), str) for t in tools
    ):
        raise BadRequest("'tools' must be a list of {'type': 'function', 'function': {'name', ...}}", "tools")
    return [dict(t) for t in tools] or None


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or len(stops) > 4 or not all(isinstance(s, str) and s for s in stops):
        raise BadRequest("'stop' must be a non-empty string or a list of up to 4 of them", "stop")
    return tuple(stops)


def parse_request(body: Any, kind: str) -> Request:
    """Validate a ``/v1/chat/completions`` (kind "chat") or ``/v1/completions`` body."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    unknown = sorted(set(body) - (CHAT_KEYS if kind == "chat" else COMPLETION_KEYS))
    if unknown:
        raise BadRequest(f"unsupported parameter(s): {', '.join(unknown)}", unknown[0])
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' is required", "model")
    for key in ("frequency_penalty", "presence_penalty"):
        if body.get(key) not in (None, 0, 0.0):
            raise BadRequest(f"'{key}' is not supported", key)
    if body.get("response_format") not in (None, {"type": "text"}):
        raise BadRequest("only response_format {'type': 'text'} is supported", "response_format")
    if kind == "completion" and (body.get("echo") or body.get("suffix")):
        raise BadRequest("'echo' and 'suffix' are not supported")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, Mapping):
        raise BadRequest("'stream_options' must be an object", "stream_options")
    max_tokens = _integer(body, "max_completion_tokens", 1) if kind == "chat" else None
    max_tokens = max_tokens if max_tokens is not None else _integer(body, "max_tokens", 1)
    req = Request(
        kind=kind,
        model=model,
        body=body,
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0),
        n=_integer(body, "n", 1, MAX_N) or 1,
        max_tokens=max_tokens,
        stop=_stop(body.get("stop")),
        seed=_integer(body, "seed", -(2**63)),
        stream=_flag(body, "stream"),
        include_usage=bool(stream_options.get("include_usage")),
        return_token_ids=_flag(body, "return_token_ids"),
        tokens_as_ids=_flag(body, "return_tokens_as_token_ids"),
        ignore_eos=_flag(body, "ignore_eos"),
    )
    if req.top_p == 0:
        raise BadRequest("'top_p' must be > 0", "top_p")
    if kind == "chat":
        req.messages = _messages(body.get("messages"))
        req.tools = _tools(body)
        req.logprobs = _flag(body, "logprobs")
        req.top_logprobs = _integer(body, "top_logprobs", 0, 20) or 0
        if req.top_logprobs and not req.logprobs:
            raise BadRequest("'top_logprobs' needs 'logprobs': true", "top_logprobs")
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
            prompt = prompt[0]
        if not (isinstance(prompt, str) or (isinstance(prompt, list) and prompt and all(type(t) is int for t in prompt))):
            raise BadRequest("'prompt' must be one string or one list of token ids", "prompt")
        req.prompt = prompt
        req.top_logprobs = _integer(body, "logprobs", 0, 20) or 0
        req.logprobs = body.get("logprobs") is not None
    return req
