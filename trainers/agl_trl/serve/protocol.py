"""The OpenAI wire format of ``serve``: request validation, tool-call parsing, response bodies.

Tool calls follow the Qwen/Hermes convention that the tiny model's chat template also uses: the
assistant writes ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks in its text.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
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

log = logging.getLogger("agentlightning.serve")

TOOL_CALL_START = "<tool_call>"
_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


class BadRequest(ValueError):
    """A request we refuse with HTTP 400; the message says what to fix."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param

    def body(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": "invalid_request_error", "param": self.param, "code": None}}


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


# --- tool calls --------------------------------------------------------------------------------


def parse_tool_calls(text: str) -> tuple[str | None, list[dict[str, Any]]]:
    """Split model output into content and OpenAI ``tool_calls``.

    Blocks whose JSON does not parse, or has no ``name``, stay in the content as text (the agent
    sees what the model wrote; the trainer still has the exact tokens).
    """
    calls: list[dict[str, Any]] = []
    kept: list[str] = []
    last = 0
    for match in _TOOL_CALL.finditer(text):
        try:
            data = json.loads(match.group(1))
        except json.JSONDecodeError:
            continue
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            continue
        args = data.get("arguments", {})
        calls.append(
            {
                "id": f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {"name": data["name"], "arguments": args if isinstance(args, str) else json.dumps(args)},
            }
        )
        kept.append(text[last : match.start()])
        last = match.end()
    if not calls:
        return text, []
    kept.append(text[last:])
    content = "".join(kept).strip()
    return content or None, calls


# --- responses ---------------------------------------------------------------------------------


@dataclass
class Choice:
    """One generated choice, whatever produced it (local model or upstream server)."""

    text: str
    finish_reason: str
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    #: per position: [(token_id, logprob), ...]; only when the request asked for top_logprobs.
    top_logprobs: list[list[tuple[int, float]]] | None = None
    content: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    #: the upstream's own OpenAI ``logprobs`` object, passed through as is (proxy mode).
    raw_logprobs: Any = None


@dataclass
class Result:
    """Everything a request produced, for the response body and the span."""

    choices: list[Choice]
    prompt_tokens: int
    prompt_token_ids: list[int] | None = None
    #: the completion token count when the choices' token ids are unknown (an upstream's usage).
    reported_completion_tokens: int | None = None
    policy_version: int | None = None
    response_id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex[:24]}")
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def completion_tokens(self) -> int:
        if self.reported_completion_tokens is not None:
            return self.reported_completion_tokens
        return sum(len(c.token_ids) if c.token_ids is not None else 0 for c in self.choices)

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


def finish_chat_choice(choice: Choice, tools_offered: bool) -> Choice:
    """Fill content/tool_calls from the text (tool calls only parsed when tools were offered)."""
    content, calls = parse_tool_calls(choice.text) if tools_offered else (choice.text, [])
    choice.content, choice.tool_calls = content, calls
    if calls and choice.finish_reason == "stop":
        choice.finish_reason = "tool_calls"
    return choice


def _token_str(tokenizer: Any, token_id: int, as_ids: bool) -> str:
    return f"token_id:{token_id}" if as_ids or tokenizer is None else tokenizer.decode([token_id])


def _chat_logprobs(req: Request, choice: Choice, tokenizer: Any) -> dict[str, Any] | None:
    if req.logprobs and choice.raw_logprobs is not None:
        return choice.raw_logprobs
    if not req.logprobs or choice.token_ids is None or choice.logprobs is None:
        return None
    content = []
    for pos, (tid, lp) in enumerate(zip(choice.token_ids, choice.logprobs)):
        token = _token_str(tokenizer, tid, req.tokens_as_ids)
        alternatives = (choice.top_logprobs or [])[pos] if choice.top_logprobs else []
        content.append(
            {
                "token": token,
                "logprob": lp,
                "bytes": list(token.encode()),
                "top_logprobs": [
                    {"token": (t := _token_str(tokenizer, i, req.tokens_as_ids)), "logprob": v, "bytes": list(t.encode())}
                    for i, v in alternatives
                ],
            }
        )
    return {"content": content}


def chat_body(req: Request, result: Result, tokenizer: Any = None) -> dict[str, Any]:
    choices = []
    for i, choice in enumerate(result.choices):
        message: dict[str, Any] = {"role": "assistant", "content": choice.content}
        if choice.tool_calls:
            message["tool_calls"] = choice.tool_calls
        item: dict[str, Any] = {
            "index": i,
            "message": message,
            "finish_reason": choice.finish_reason,
            "logprobs": _chat_logprobs(req, choice, tokenizer),
        }
        if req.return_token_ids:
            item["token_ids"] = choice.token_ids
        choices.append(item)
    return _body(req, result, result.response_id, "chat.completion", choices)


def completion_body(req: Request, result: Result, tokenizer: Any = None) -> dict[str, Any]:
    choices = []
    for i, choice in enumerate(result.choices):
        item: dict[str, Any] = {"index": i, "text": choice.text, "finish_reason": choice.finish_reason, "logprobs": None}
        if req.logprobs and choice.token_ids is not None and choice.logprobs is not None:
            item["logprobs"] = {
                "tokens": [_token_str(tokenizer, t, req.tokens_as_ids) for t in choice.token_ids],
                "token_logprobs": choice.logprobs,
                "top_logprobs": [
                    {_token_str(tokenizer, t, req.tokens_as_ids): v for t, v in alts} for alts in choice.top_logprobs or []
                ]
                or None,
            }
        if req.return_token_ids:
            item["token_ids"] = choice.token_ids
        choices.append(item)
    return _body(req, result, result.response_id.replace("chatcmpl-", "cmpl-"), "text_completion", choices)


def _body(req: Request, result: Result, response_id: str, obj: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
    """A non-streaming response body around its `choices`, with usage and, if asked, the prompt's token ids."""
    body: dict[str, Any] = {
        "id": response_id,
        "object": obj,
        "created": result.created,
        "model": req.model,
        "choices": choices,
        "usage": result.usage(),
    }
    if req.return_token_ids:
        body["prompt_token_ids"] = result.prompt_token_ids
    return body


def stream_chunk(
    req: Request, base: dict[str, Any], index: int, delta: dict[str, Any], finish: str | None = None, **extra: Any
) -> dict[str, Any]:
    """One stream chunk for choice `index`; `base` has the response's id, created and model."""
    if req.kind == "chat":
        choice = {"index": index, "delta": delta, "finish_reason": finish, **extra}
        return {**base, "object": "chat.completion.chunk", "choices": [choice]}
    choice = {"index": index, "text": delta.get("content", ""), "finish_reason": finish, "logprobs": None, **extra}
    return {**base, "object": "text_completion", "choices": [choice]}


def final_chunks(req: Request, body: dict[str, Any], sent: dict[int, str] | None = None) -> list[dict[str, Any]]:
    """The chunks that end a stream whose choices' text `sent` (by index) already went out: the
    rest of each text, its tool calls and finish reason, then the usage if asked. A choice's
    logprobs come with its last text (or its finish chunk); asked for token ids (vLLM's
    ``return_token_ids``) come whole on the finish chunk, the prompt's on the first chunk."""
    base = {"id": body["id"], "created": body["created"], "model": body["model"]}
    chunks: list[dict[str, Any]] = []
    for choice in body["choices"]:
        i = choice["index"]
        text = (choice["message"].get("content") or "") if req.kind == "chat" else choice["text"]
        done = (sent or {}).get(i, "")
        if not text.startswith(done):  # cannot happen with prefix-stable decoding (see TextStream)
            log.warning("streamed text %r is not a prefix of the final text %r", done, text)
        rest = text[len(done) :] if text.startswith(done) else ""
        logprobs = choice.get("logprobs")
        if rest:
            chunks.append(stream_chunk(req, base, i, {"content": rest}, logprobs=logprobs))
            logprobs = None
        calls = (choice["message"].get("tool_calls") or []) if req.kind == "chat" else []
        for k, call in enumerate(calls):
            chunks.append(stream_chunk(req, base, i, {"tool_calls": [{"index": k, **call}]}))
        finish: dict[str, Any] = {"logprobs": logprobs} if logprobs else {}
        if req.return_token_ids:
            finish["token_ids"] = choice.get("token_ids")
        chunks.append(stream_chunk(req, base, i, {}, choice["finish_reason"], **finish))
    if req.return_token_ids and chunks:
        chunks[0]["prompt_token_ids"] = body.get("prompt_token_ids")
    if req.include_usage:
        obj = "chat.completion.chunk" if req.kind == "chat" else "text_completion"
        chunks.append({**base, "object": obj, "choices": [], "usage": body["usage"]})
    return chunks


def _partial_suffix(text: str, marker: str) -> int:
    """The length of the longest end of `text` that is a proper beginning of `marker`."""
    for k in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:k]):
            return k
    return 0


class TextStream:
    """The text of one streamed choice, token by token: `push` returns what may be sent now.

    Sent text is always a beginning of the choice's final text. Held back: an incomplete
    multi-byte character (the decoding ends in U+FFFD), anything from a ``stop`` string on and an
    end that could still become one, and, when tools are offered, everything from a tool-call
    marker on, an end that could still become one, trailing whitespace (stripped when a tool call
    follows) and a reply that starts with whitespace (stripped too, so held to the end). The
    whole text is decoded at each push: correct for any tokenizer whose decoding of a prefix of the
    ids is a prefix of the decoding (byte-level BPE, SentencePiece without space clean-up).
    """

    def __init__(self, tokenizer: Any, stop: tuple[str, ...] = (), tools: bool = False) -> None:
        self.tokenizer, self.stop, self.tools = tokenizer, stop, tools
        self.token_ids: list[int] = []
        self.sent = ""

    def push(self, token_ids: list[int]) -> str:
        self.token_ids += token_ids
        text = self.tokenizer.decode(self.token_ids, skip_special_tokens=True).rstrip("\ufffd")
        end = len(text)
        for marker in self.stop + ((TOOL_CALL_START,) if self.tools else ()):
            at = text.find(marker)
            end = min(end, at if at >= 0 else len(text) - _partial_suffix(text, marker))
        if self.tools:
            end = 0 if text[:1].isspace() else len(text[:end].rstrip())
        if end <= len(self.sent) or not text.startswith(self.sent):
            return ""
        delta, self.sent = text[len(self.sent) : end], text[:end]
        return delta
