"""The runner: agents sync/async, rewards, crashes, threads and processes, the command agent."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import pytest

import agentlightning as agl
from agl_core.runtime.runner import Runner, rollout
from agl_core.tracing import semconv
from agl_core.training.algorithm import Algorithm
from agl_core.types import RolloutRequest, Task


@pytest.fixture
def store():
    s = agl.LightningStore("memory://")
    agl.configure(s)
    return s


def test_return_value_is_final_reward_and_resources_are_passed(store) -> None:
    res = store.add_resources({"prompt": agl.PromptTemplate(template="hi {name}")})

    @rollout(name="greeter")
    def agent(task, resources):
        assert agl.current_resources()["prompt"].template == "hi {name}"
        agl.emit_reward(0.1)  # superseded by the return value
        return len(resources["prompt"].format(name=task["name"])) / 10

    store.enqueue_rollout({"name": "ada"}, resources_id=res.resources_id)
    assert Runner(agent, store).run() == 1
    [r] = store.query_rollouts()
    assert r.status == "succeeded" and r.final_reward == pytest.approx(0.6)
    names = [s.name for s in store.query_spans(r.rollout_id)]
    assert "invoke_agent greeter" in names


def test_async_agent_and_emitted_reward(store) -> None:
    async def agent(task, resources):
        await asyncio.sleep(0)
        agl.emit_reward(task * 2)

    store.enqueue_rollouts([RolloutRequest(input=1), RolloutRequest(input=2)])
    Runner(agent, store, n_workers=2).run()
    assert sorted(r.final_reward for r in store.query_rollouts()) == [2.0, 4.0]


def test_crash_fails_attempt_records_exception_and_retries(store) -> None:
    calls = []

    def agent(task, resources):
        calls.append(task)
        if len(calls) == 1:
            raise KeyError("first try breaks")
        return 1.0

    r = store.enqueue_rollout("t", max_attempts=2)
    Runner(agent, store).run()
    got = store.get_rollout(r.rollout_id)
    assert got.status == "succeeded" and got.final_reward == 1.0 and len(calls) == 2
    first, second = store.query_attempts(r.rollout_id)
    assert first.status == "failed" and "first try breaks" in first.error
    exc = [s for s in store.query_spans(r.rollout_id, first.attempt_id) if s.name == semconv.SPAN_EXCEPTION]
    assert exc and exc[0].attributes[semconv.EXCEPTION_TYPE] == "KeyError"


def test_nan_reward_from_agent_fails_attempt_not_runner(store) -> None:
    store.enqueue_rollouts([RolloutRequest(input="nan"), RolloutRequest(input="ok")])
    Runner(lambda t, r: float("nan") if t == "nan" else 1.0, store).run()
    statuses = {r.input: r.status for r in store.query_rollouts()}
    assert statuses == {"nan": "failed", "ok": "succeeded"}


def test_process_workers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = agl.LightningStore(url)
    store.enqueue_rollouts([RolloutRequest(input=i) for i in range(6)])
    from tests.core.agents import square_reward

    Runner(square_reward, url, n_workers=2, processes=True).run()
    rollouts = store.query_rollouts()
    assert sorted(r.final_reward for r in rollouts) == [float(i * i) for i in range(6)]
    assert {a.worker_id.split("-")[0] for r in rollouts for a in store.query_attempts(r.rollout_id)} == {"proc"}


def test_algorithm_run_rollouts_with_background_runner(store) -> None:
    tasks = [Task(input=i) for i in range(3)]
    with Runner(lambda t, r: float(t), store, n_workers=2):
        done = Algorithm.run_rollouts(store, tasks, resources_id=None, repeats=2, mode="val")
    assert sorted(r.final_reward for r in done) == [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]


def test_command_agent_traces_unmodified_program(tmp_path: Path, store) -> None:
    """An unmodified openai script, run under opentelemetry-instrument, lands in the rollout."""
    from agl_core.runtime.program import CommandAgent
    from tests.fixtures.scripted_openai import ScriptedOpenAI

    script = tmp_path / "my_agent.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys
            from openai import OpenAI
            client = OpenAI()
            r = client.chat.completions.create(model=os.environ["AGL_MODEL"], messages=[{"role": "user", "content": sys.argv[1]}])
            print(r.choices[0].message.content)
            """
        )
    )
    with ScriptedOpenAI(lambda body: "the answer is 42") as server:
        res = store.add_resources({"llm": agl.LLMEndpoint(endpoint=server.base_url, model="m")})
        r = store.enqueue_rollout({"question": "what is 6*7?", "answer": 42}, resources_id=res.resources_id)
        agent = CommandAgent("program", f"{sys.executable} {script} {{input}}")
        Runner(agent, store).run()
        assert len(server.chat_requests()) == 1
    got = store.get_rollout(r.rollout_id)
    assert got.status == "succeeded" and got.final_reward == 1.0
    spans = store.query_spans(r.rollout_id)
    chat = [s for s in spans if s.attributes.get(semconv.GEN_AI_OPERATION_NAME) == "chat"]
    assert len(chat) == 1, [s.name for s in spans]
    assert chat[0].resource.get(semconv.AGL_ROLLOUT_ID) == r.rollout_id
