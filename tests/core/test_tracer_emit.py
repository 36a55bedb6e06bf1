"""The tracer and emitters on the embedded default store, as the README promises."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import agentlightning as agl
from agl_core.tracing import semconv


@pytest.fixture
def store():
    s = agl.LightningStore("memory://")
    agl.configure(s)
    return s


def test_trace_on_embedded_default_writes_sqlite_under_agl_home(tmp_path: Path) -> None:
    code = (
        "import agentlightning as agl\n"
        "with agl.tracer.trace('my-agent', {'q': 1}):\n"
        "    agl.emit_reward(0.5)\n"
    )
    env = {**os.environ, "AGL_HOME": str(tmp_path)}
    env.pop("AGL_STORAGE", None)
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    db = tmp_path / "store.db"
    assert db.is_file()
    store = agl.LightningStore(f"sqlite:///{db}")
    [rollout] = store.query_rollouts()
    assert rollout.status == "succeeded" and rollout.final_reward == 0.5
    assert rollout.input == {"q": 1}
    names = {s.name for s in store.query_spans(rollout.rollout_id)}
    assert names == {"invoke_agent my-agent", semconv.SPAN_REWARD}


def test_spans_carry_rollout_ids_into_threads_and_tasks(store) -> None:
    def in_thread() -> None:
        agl.emit_message("from a thread")

    async def in_task() -> None:
        agl.emit_message("from a task")

    with agl.tracer.trace("agent", "x") as run:
        t = threading.Thread(target=in_thread)
        t.start()
        t.join()
        with ThreadPoolExecutor(2) as pool:
            pool.submit(agl.emit_object, {"k": 1}).result()

        async def main() -> None:
            await asyncio.gather(asyncio.create_task(in_task()))

        asyncio.run(main())
    spans = store.query_spans(run.rollout.rollout_id)
    assert sorted(s.name for s in spans) == sorted(
        ["invoke_agent agent", "agl.message", "agl.message", "agl.object"]
    )
    root = next(s for s in spans if s.name == "invoke_agent agent")
    assert all(s.parent_id == root.span_id for s in spans if s is not root)
    assert all(s.attributes[semconv.AGL_ROLLOUT_ID] == run.rollout.rollout_id for s in spans)


def test_exception_fails_rollout_and_is_recorded(store) -> None:
    with pytest.raises(RuntimeError):
        with agl.tracer.trace("agent") as run:
            raise RuntimeError("boom")
    rollout = store.get_rollout(run.rollout.rollout_id)
    assert rollout.status == "failed"
    [root] = store.query_spans(rollout.rollout_id)
    assert root.status.code == "ERROR" and "boom" in (root.status.description or "")
    assert any(e.name == "exception" for e in root.events)


def test_decorator_sync_and_async_record_input_output(store) -> None:
    @agl.tracer.trace("adder")
    def add(a: int, b: int) -> int:
        agl.emit_reward(1.0)
        return a + b

    @agl.tracer.trace("async-adder")
    async def aadd(a: int, b: int) -> int:
        agl.emit_reward(0.25)
        return a + b

    assert add(1, 2) == 3
    assert asyncio.run(aadd(2, 3)) == 5
    rollouts = {r.metadata["agent"]: r for r in store.query_rollouts()}
    assert rollouts["adder"].final_reward == 1.0 and rollouts["adder"].input == {"a": 1, "b": 2}
    assert rollouts["async-adder"].final_reward == 0.25
    root = next(s for s in store.query_spans(rollouts["adder"].rollout_id) if s.name == "invoke_agent adder")
    assert root.attributes[semconv.AGL_ROLLOUT_OUTPUT] == "3"


def test_async_context_manager(store) -> None:
    async def main() -> str:
        async with agl.tracer.trace("a-agent", {"n": 1}) as run:
            agl.emit_reward(0.75)
        return run.rollout.rollout_id

    rid = asyncio.run(main())
    assert store.get_rollout(rid).final_reward == 0.75


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "high", None, True])
def test_bad_reward_raises_value_error_naming_it(store, bad) -> None:
    with pytest.raises(ValueError, match="finite number"):
        agl.emit_reward(bad)


def test_emitters_outside_rollout_make_standalone_traces(store) -> None:
    agl.emit_reward(1.0)
    agl.emit_annotation({"k": "v", "n": 2, "obj": {"a": 1}})
    agl.emit_exception(ValueError("bad"))
    agl.flush()
    spans = store.query_spans(unassigned=True)
    assert {s.name for s in spans} >= {semconv.SPAN_REWARD, semconv.SPAN_ANNOTATION, semconv.SPAN_EXCEPTION}
    ann = next(s for s in spans if s.name == semconv.SPAN_ANNOTATION)
    assert ann.attributes["agl.annotation.k"] == "v" and ann.attributes["agl.annotation.obj"] == '{"a": 1}'
    exc = next(s for s in spans if s.name == semconv.SPAN_EXCEPTION)
    assert exc.attributes[semconv.EXCEPTION_TYPE] == "ValueError"


def test_emit_tool_call_outside_a_rollout_is_stored_unassigned(store, monkeypatch) -> None:
    from tests.fixtures.scripted_openai import ScriptedOpenAI, tool_call

    model, messages = "m1", [{"role": "user", "content": "find the docs"}]
    tools = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object", "properties": {}}}}]
    with ScriptedOpenAI(lambda body: tool_call("search", q="docs")) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        response = agl.emit_tool_call(model=model, messages=messages, tools=tools, context={"task": "search"})  # the card's call
    assert response.choices[0].message.tool_calls[0].function.name == "search"
    agl.flush()
    [chat] = [s for s in store.query_spans(unassigned=True) if s.name == "chat m1"]  # where the README says to look
    assert chat.rollout_id is None and chat.attributes[semconv.AGL_TOOL_CALL_CONTEXT] == '{"task": "search"}'
    assert '"tool_call"' in chat.attributes[semconv.GEN_AI_OUTPUT_MESSAGES]


def test_switching_stores_keeps_finished_spans_in_the_store_they_were_recorded_for(store) -> None:
    agl.emit_annotation({"which": "first"})  # ended, still in the batch queue
    second = agl.LightningStore("memory://")
    agl.configure(second)
    agl.emit_annotation({"which": "second"})
    agl.flush()
    assert [s.attributes["agl.annotation.which"] for s in store.query_spans(unassigned=True)] == ["first"]
    assert [s.attributes["agl.annotation.which"] for s in second.query_spans(unassigned=True)] == ["second"]


def test_existing_global_tracer_provider_is_kept() -> None:
    code = (
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter\n"
        "mine = InMemorySpanExporter(); p = TracerProvider(); p.add_span_processor(SimpleSpanProcessor(mine))\n"
        "trace.set_tracer_provider(p)\n"
        "import agentlightning as agl\n"
        "s = agl.LightningStore('memory://'); agl.configure(s)\n"
        "assert trace.get_tracer_provider() is p\n"
        "with agl.tracer.trace('a'): agl.emit_reward(1.0)\n"
        "assert {x.name for x in mine.get_finished_spans()} == {'invoke_agent a', 'agl.reward'}\n"
        "assert s.query_rollouts()[0].final_reward == 1.0\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_emit_tool_call_records_chat_span_with_tools_and_context(store) -> None:
    from tests.fixtures.scripted_openai import ScriptedOpenAI, tool_call

    tools = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {}}}}]
    with ScriptedOpenAI(lambda body: tool_call("add", a=1, b=2)) as server:
        endpoint = agl.LLMEndpoint(endpoint=server.base_url, model="m1")
        res = store.add_resources({"llm": endpoint})
        store.enqueue_rollout({"q": 1}, resources_id=res.resources_id)
        seen = {}

        def agent(task, resources):
            response = agl.emit_tool_call(None, [{"role": "system", "content": "be brief"}, {"role": "user", "content": "1+2"}], tools, context={"step": 1})
            seen["call"] = response.choices[0].message.tool_calls[0].function.name
            return 1.0

        from agl_core.runtime.runner import Runner

        Runner(agent, store).run()
        assert seen["call"] == "add"
        [request] = server.chat_requests()
        assert request["body"]["tools"] == tools and request["body"]["model"] == "m1"
        assert "traceparent" in request["headers"] and "agl.rollout.id" in request["headers"]["baggage"]
        assert request["path"] == "/v1/chat/completions"  # not rollout-scoped: not our own serve
    [rollout] = store.query_rollouts()
    chat = next(s for s in store.query_spans(rollout.rollout_id) if s.name == "chat m1")
    assert chat.attributes[semconv.GEN_AI_TOOL_DEFINITIONS].startswith("[")
    assert chat.attributes["agl.tool_call.context"] == '{"step": 1}'
    assert '"tool_call"' in chat.attributes[semconv.GEN_AI_OUTPUT_MESSAGES]
    assert chat.attributes[semconv.GEN_AI_SYSTEM_INSTRUCTIONS] == '[{"type": "text", "content": "be brief"}]'
