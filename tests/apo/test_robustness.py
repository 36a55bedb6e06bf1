"""Critic/editor failures: 429s wait for Retry-After, 5xx and timeouts back off, a failed child is dropped."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.responses import JSONResponse

from agl_apo import LLMError, TextLLM
from agl_core.runtime.agent import Agent
from agl_core.training.algorithm import fit
from tests.apo import scripted_rooms
from tests.apo.conftest import make_apo
from tests.fixtures.scripted_openai import ScriptedOpenAI

MESSAGES = [{"role": "system", "content": "You edit"}, {"role": "user", "content": "<current_prompt>\nx\n</current_prompt>"}]


class FaultyOpenAI(ScriptedOpenAI):
    """Answers with the planned faults first: an HTTP status (with headers) or a delay in seconds."""

    def __init__(self, faults: list[Any], only_critic: bool = False) -> None:
        super().__init__(scripted_rooms.responder)
        self.faults = list(faults)
        self.only_critic = only_critic

    async def _chat(self, request: Any) -> Any:
        body = await request.json()
        is_critic = body["messages"][0]["content"].startswith("You critique")
        if self.faults and (is_critic or not self.only_critic):
            fault = self.faults.pop(0)
            if isinstance(fault, float):
                await asyncio.sleep(fault)
            elif fault is not None:
                status, headers = fault
                self.requests.append({"path": request.url.path, "headers": {}, "body": body})
                return JSONResponse({"error": {"message": f"fault {status}", "type": "test"}}, status_code=status, headers=headers)
        return await super()._chat(request)


def llm(server: ScriptedOpenAI, sleeps: list[float], **kwargs: Any) -> TextLLM:
    return TextLLM("scripted", base_url=server.base_url, api_key="t", backoff_s=0.5, max_backoff_s=1.5, sleep=sleeps.append, **kwargs)


def test_429_waits_for_retry_after():
    sleeps: list[float] = []
    with FaultyOpenAI([(429, {"retry-after": "3"}), (429, {"retry-after-ms": "250"})]) as server:
        assert llm(server, sleeps).complete(MESSAGES).startswith("<prompt>")
    assert sleeps == [3.0, 0.25]


def test_server_errors_back_off_exponentially_then_give_up():
    sleeps: list[float] = []
    with FaultyOpenAI([(500, {})] * 10) as server:
        with pytest.raises(LLMError, match="gave up after 4 tries"):
            llm(server, sleeps, max_retries=3).complete(MESSAGES)
        assert len(server.chat_requests()) == 4
    assert sleeps == [0.5, 1.0, 1.5]  # doubling, capped at max_backoff_s


def test_timeouts_are_retried():
    sleeps: list[float] = []
    with FaultyOpenAI([1.0]) as server:
        assert llm(server, sleeps, timeout_s=0.3).complete(MESSAGES).startswith("<prompt>")
    assert sleeps == [0.5]


def test_client_errors_are_not_retried():
    sleeps: list[float] = []
    with FaultyOpenAI([(400, {})]) as server:
        with pytest.raises(LLMError, match="BadRequest"):
            llm(server, sleeps).complete(MESSAGES)
        assert len(server.chat_requests()) == 1
    assert sleeps == []


def test_failed_children_are_dropped_not_fatal(store, tmp_path):
    # every other critic call fails for good (make_apo allows one retry): those children are dropped
    with FaultyOpenAI([(503, {}), (503, {}), None, None] * 20, only_critic=True) as server:
        apo = make_apo(server, tmp_path, beam_rounds=1, val_batch_size=8)
        summary = fit(apo, Agent("room_selector"), store, scripted_rooms.load_tasks("train"), scripted_rooms.load_tasks("val"), n_workers=4)
    metrics = store.query_metrics(summary["run_id"])
    assert sum(m.metrics.get("dropped", 0) for m in metrics) > 0
    assert summary["best_score"] > summary["seed_score"]
