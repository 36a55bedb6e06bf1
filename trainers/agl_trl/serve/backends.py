"""What answers a request behind ``serve``: a local transformers model, or an upstream server.

Both turn a validated `Request` into a `Result` (choices with, where known, the exact token ids
and log-probabilities), so that responses and spans are built the same way for both.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
from typing import Any, AsyncGenerator, Awaitable

import httpx

from .batch import SamplingParams, TokenCallback
from .engine import BatchedGenerator
from .protocol import DEFAULT_MAX_TOKENS, BadRequest, Request
from .responses import Choice, Result, finish_chat_choice

log = logging.getLogger("agentlightning.serve")


class UpstreamError(RuntimeError):
    """The upstream answered with an error; relayed to our client with the same status."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"upstream answered {status}")
        self.status, self.body = status, body


class LocalBackend:
    """Generates with a transformers model through the continuously batching `BatchedGenerator`."""

    def __init__(self, engine: BatchedGenerator, tokenizer: Any) -> None:
        self.engine, self.tokenizer = engine, tokenizer

    def prompt_ids(self, req: Request) -> list[int]:
        if req.kind == "completion":
            if isinstance(req.prompt, list):
                return list(req.prompt)
            return list(self.tokenizer(req.prompt, add_special_tokens=False)["input_ids"])
        try:
            ids = self.tokenizer.apply_chat_template(
                req.messages, tools=req.tools, add_generation_prompt=True, tokenize=True, return_dict=False
            )
        except Exception as exc:  # template errors are the request's fault (e.g. role order)
            raise BadRequest(f"the chat template rejected the messages: {exc}", "messages") from exc
        return list(ids["input_ids"] if isinstance(ids, dict) else ids)

    async def run(self, req: Request, headers: dict[str, str]) -> Result:
        """`headers`: the trace headers for an upstream; a local model has none to call."""
        return await self.submit(req)

    def submit(self, req: Request, on_token: TokenCallback | None = None) -> Awaitable[Result]:
        """Queue `req` now (a `BadRequest` raises here, before any response is sent); await the
        returned for its `Result`. `on_token(choice_index, token_id)` runs in the engine's thread."""
        prompt = self.prompt_ids(req)
        if not prompt:
            raise BadRequest("the prompt is empty", "prompt")
        vocabulary = self.engine.vocab_size
        if unknown := [t for t in prompt if not 0 <= t < vocabulary]:  # checked here: in the batch it would fail its neighbours
            raise BadRequest(f"token ids outside the vocabulary (0..{vocabulary - 1}): {unknown[:5]}", "prompt")
        room = self.engine.context_length - len(prompt)
        if room < 1:
            context = self.engine.context_length
            where = "messages" if req.kind == "chat" else "prompt"
            raise BadRequest(f"the prompt has {len(prompt)} tokens; the model's context is {context}", where, "context_length_exceeded")
        wanted = req.max_tokens if req.max_tokens is not None else DEFAULT_MAX_TOKENS
        params = SamplingParams(
            max_tokens=min(wanted, room),
            temperature=req.temperature,
            top_p=req.top_p,
            seed=req.seed,
            stop=req.stop,
            top_logprobs=req.top_logprobs,
            ignore_eos=req.ignore_eos,
        )
        streaming = {"on_token": on_token} if on_token is not None else {}  # plain calls stay (prompt, params, n)
        return self._result(req, prompt, self.engine.submit(prompt, params, req.n, **streaming))

    async def _result(self, req: Request, prompt: list[int], future: concurrent.futures.Future) -> Result:
        samples = await asyncio.wrap_future(future)
        choices = []
        for s in samples:
            choice = Choice(s.text, s.finish_reason, s.token_ids, s.logprobs, s.top_logprobs or None, content=s.text)
            choices.append(finish_chat_choice(choice, bool(req.tools)) if req.kind == "chat" else choice)
        return Result(choices, len(prompt), prompt, policy_version=samples[0].policy_version)


# vLLM's extensions for token ids; sent to the upstream unless it refuses them.
_TOKEN_EXTENSIONS = {"return_token_ids": True, "return_tokens_as_token_ids": True}


def _ids_from_logprobs(tokens: list[str]) -> list[int] | None:
    """Token ids from vLLM's ``return_tokens_as_token_ids`` token strings (``token_id:123``)."""
    ids = []
    for token in tokens:
        if not isinstance(token, str) or not token.startswith("token_id:"):
            return None
        ids.append(int(token.split(":", 1)[1]))
    return ids


class ProxyBackend:
    """Forwards to an OpenAI-compatible upstream (vLLM, another ``serve``, any provider).

    A ``stream: true`` request streams from the upstream too (`open_stream`): its chunks are relayed
    as they come, and put back together (`StreamedReply`) for the span when the stream ends; the
    usage chunk is always asked for, and relayed only when the client asked for it.

    It asks for logprobs and vLLM's token-id extensions; an upstream that refuses them with a 400
    is asked again without them (and never again). Token attributes are recorded only when the
    upstream returned them. The logprobs are the upstream's: vLLM's are of the raw model
    distribution unless it runs with ``--logprobs-mode processed_logprobs``.
    """

    def __init__(self, url: str, api_key: str | None = None, timeout_s: float = 600.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers, timeout=timeout_s)
        self.extensions = True

    def _body(self, req: Request, extensions: bool) -> dict[str, Any]:
        body = {k: v for k, v in req.body.items() if k not in ("stream", "stream_options")}
        if req.stream:
            body.update(stream=True, stream_options={"include_usage": True})
        if extensions:
            body.update(_TOKEN_EXTENSIONS)
            if req.kind == "chat":
                body["logprobs"] = True
            else:
                body["logprobs"] = req.top_logprobs
        return body

    async def _send(self, req: Request, headers: dict[str, str]) -> httpx.Response:
        """The upstream's response (its body unread when streaming); an error status raises
        `UpstreamError`. A 400 to our token extensions is retried once without them."""
        path = "/chat/completions" if req.kind == "chat" else "/completions"
        while True:
            extensions = self.extensions
            request = self.client.build_request("POST", path, json=self._body(req, extensions), headers=headers)
            response = await self.client.send(request, stream=req.stream)
            if response.status_code < 400:
                return response
            await response.aread()
            await response.aclose()
            if response.status_code == 400 and extensions:
                log.warning("upstream refused logprobs/token-id extensions (%s); retrying without", response.text[:200])
                self.extensions = False
                continue
            try:
                data = response.json()
            except ValueError:
                data = {"error": {"message": response.text[:1000], "type": "upstream_error"}}
            raise UpstreamError(response.status_code, data)

    async def run(self, req: Request, headers: dict[str, str]) -> Result:
        """`headers` carry our span's trace context, so an upstream ``serve`` joins the trace."""
        return self.result(req, (await self._send(req, headers)).json())

    async def open_stream(self, req: Request, headers: dict[str, str]) -> AsyncGenerator[dict[str, Any], None]:
        """Start a streamed request (errors raise here, before any byte goes to our client); the
        returned iterator yields the upstream's chunks and closes the connection when left."""
        response = await self._send(req, headers)

        async def chunks() -> AsyncGenerator[dict[str, Any], None]:
            try:
                async for line in response.aiter_lines():
                    data = line[5:].strip() if line.startswith("data:") else ""
                    if data == "[DONE]":
                        return
                    if data:
                        yield json.loads(data)
            finally:
                await response.aclose()

        return chunks()

    def result(self, req: Request, data: dict[str, Any]) -> Result:
        """The `Result` of an upstream's (non-streamed, or `StreamedReply`-gathered) response body."""
        choices = []
        for item in sorted(data.get("choices") or [], key=lambda c: c.get("index", 0)):
            raw = item.get("logprobs") or None
            if req.kind == "chat":
                entries = (raw or {}).get("content") or []
                tokens, logprobs = [e.get("token") for e in entries], [float(e["logprob"]) for e in entries]
            else:
                tokens, logprobs = (raw or {}).get("tokens") or [], [float(v) for v in (raw or {}).get("token_logprobs") or []]
            ids = item.get("token_ids") or (_ids_from_logprobs(tokens) if tokens else None)
            message = item.get("message") or {}
            text = (message.get("content") or "") if req.kind == "chat" else item.get("text", "")
            choices.append(
                Choice(
                    text=text,
                    finish_reason=item.get("finish_reason") or "stop",
                    token_ids=list(ids) if ids else None,
                    logprobs=logprobs if ids and len(logprobs) == len(ids) else None,
                    content=message.get("content"),
                    tool_calls=list(message.get("tool_calls") or []),
                    raw_logprobs=raw if req.logprobs else None,
                )
            )
        usage = data.get("usage") or {}
        prompt_ids = data.get("prompt_token_ids")
        result = Result(
            choices,
            int(usage.get("prompt_tokens") or (len(prompt_ids) if prompt_ids else 0)),
            list(prompt_ids) if prompt_ids else None,
            reported_completion_tokens=usage.get("completion_tokens"),
        )
        if data.get("id"):
            result.response_id = data["id"]
        return result

    async def aclose(self) -> None:
        await self.client.aclose()


class StreamedReply:
    """An upstream's stream chunks put back together into the body of the non-streamed response,
    as `ProxyBackend.result` reads it: text, tool calls (merged by index), finish reason,
    logprobs, vLLM's ``token_ids``/``prompt_token_ids``, usage."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.data: dict[str, Any] = {}
        self.choices: dict[int, dict[str, Any]] = {}

    def add(self, chunk: dict[str, Any]) -> None:
        for key in ("id", "usage", "prompt_token_ids"):
            if chunk.get(key):
                self.data[key] = chunk[key]
        for item in chunk.get("choices") or []:
            choice = self.choices.setdefault(
                item.get("index", 0), {"text": "", "calls": {}, "logprobs": [], "tokens": [], "token_logprobs": [], "token_ids": []}
            )
            logprobs = item.get("logprobs") or {}
            if self.kind == "chat":
                delta = item.get("delta") or {}
                choice["text"] += delta.get("content") or ""
                for call in delta.get("tool_calls") or []:
                    merged = choice["calls"].setdefault(call.get("index", 0), {"type": "function", "function": {"name": "", "arguments": ""}})
                    if call.get("id"):
                        merged["id"] = call["id"]
                    for key, part in (call.get("function") or {}).items():
                        merged["function"][key] = merged["function"].get(key, "") + (part or "")
                choice["logprobs"] += logprobs.get("content") or []
            else:
                choice["text"] += item.get("text") or ""
                choice["tokens"] += logprobs.get("tokens") or []
                choice["token_logprobs"] += logprobs.get("token_logprobs") or []
            choice["token_ids"] += item.get("token_ids") or []
            if item.get("finish_reason"):
                choice["finish_reason"] = item["finish_reason"]

    def body(self) -> dict[str, Any]:
        choices = []
        for index, c in sorted(self.choices.items()):
            item: dict[str, Any] = {"index": index, "finish_reason": c.get("finish_reason"), "token_ids": c["token_ids"] or None}
            if self.kind == "chat":
                calls = [c["calls"][k] for k in sorted(c["calls"])]
                item["message"] = {"role": "assistant", "content": c["text"] if c["text"] or not calls else None, "tool_calls": calls}
                item["logprobs"] = {"content": c["logprobs"]} if c["logprobs"] else None
            else:
                item["text"] = c["text"]
                item["logprobs"] = {"tokens": c["tokens"], "token_logprobs": c["token_logprobs"]} if c["tokens"] else None
            choices.append(item)
        return {**self.data, "choices": choices}
