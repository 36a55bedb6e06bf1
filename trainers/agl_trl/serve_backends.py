"""What answers a request behind ``serve``: a local transformers model, or an upstream server.

Both turn a validated `Request` into a `Result` (choices with, where known, the exact token ids
and log-probabilities), so that responses and spans are built the same way for both.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import Any, Awaitable

import httpx

from agl_trl.serve_engine import BatchedGenerator, SamplingParams, TokenCallback
from agl_trl.serve_protocol import DEFAULT_MAX_TOKENS, BadRequest, Choice, Request, Result, finish_chat_choice

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
        room = self.engine.context_length - len(prompt)
        if room < 1:
            raise BadRequest(f"the prompt has {len(prompt)} tokens; the model's context is {self.engine.context_length}")
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

    Always non-streaming upstream: a ``stream: true`` request is answered with the finished
    response sent as stream chunks (no time-to-first-token gain through a proxy).

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
        if extensions:
            body.update(_TOKEN_EXTENSIONS)
            if req.kind == "chat":
                body["logprobs"] = True
            else:
                body["logprobs"] = req.top_logprobs
        return body

    async def run(self, req: Request, headers: dict[str, str]) -> Result:
        """`headers` carry our span's trace context, so an upstream ``serve`` joins the trace."""
        path = "/chat/completions" if req.kind == "chat" else "/completions"
        response = await self.client.post(path, json=self._body(req, self.extensions), headers=headers)
        if response.status_code == 400 and self.extensions:
            log.warning("upstream refused logprobs/token-id extensions (%s); retrying without", response.text[:200])
            self.extensions = False
            response = await self.client.post(path, json=self._body(req, False), headers=headers)
        try:
            data = response.json()
        except ValueError:
            data = {"error": {"message": response.text[:1000], "type": "upstream_error"}}
        if response.status_code >= 400:
            raise UpstreamError(response.status_code, data)
        return self._result(req, data)

    def _result(self, req: Request, data: dict[str, Any]) -> Result:
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
