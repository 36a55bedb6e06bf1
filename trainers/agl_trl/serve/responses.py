"""The OpenAI wire format of ``serve``, outbound: tool-call parsing, response bodies, stream chunks.

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
from typing import Any

from .protocol import Request

log = logging.getLogger("agentlightning.serve")

TOOL_CALL_START = "<tool_call>"
_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


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
