"""CrewAI plugin: crew, task, agent and tool spans around CrewAI's own calls; chat spans from openai."""

from __future__ import annotations

import os

import pytest

os.environ["CREWAI_DISABLE_TELEMETRY"] = "true"
os.environ["CREWAI_TRACING_ENABLED"] = "false"
os.environ.pop("OTEL_SDK_DISABLED", None)

import agentlightning as agl  # noqa: E402
from agl_core.plugins.manager import instrument, uninstrument  # noqa: E402
from agl_core.tracing import semconv  # noqa: E402
from agl_core.tracing.convert import parse_json_attr  # noqa: E402
from agl_core.training.adapters import spans_to_triplets  # noqa: E402
from tests.fixtures.scripted_openai import ScriptedOpenAI  # noqa: E402
from tests.plugins.helpers import (  # noqa: E402
    BrokenProvider,
    assert_add_tool_call,
    broken,
    by_op,
    calculator_responder,
)

pytest.importorskip("crewai")
from crewai import LLM, Agent, Crew, Task  # noqa: E402
from crewai.tools import tool  # noqa: E402

MODEL = "gpt-4o-mini"
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@tool("add")
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def _llm(server: ScriptedOpenAI) -> LLM:
    return LLM(model=f"openai/{MODEL}", base_url=server.base_url, api_key="test")


def _calculator_crew(server: ScriptedOpenAI) -> Crew:
    agent = Agent(role="calculator", goal="add numbers", backstory="You are precise.", llm=_llm(server), tools=[add])
    task = Task(name="addition", description="What is 2+3?", expected_output="the sum", agent=agent)
    return Crew(name="calc-crew", agents=[agent], tasks=[task])


def test_tool_agent_run_is_traced(store):
    assert set(instrument(["openai", "crewai"])) == {"openai", "crewai"}
    with ScriptedOpenAI(calculator_responder) as server:
        with agl.tracer.trace("calc-run", "what is 2+3?") as run:
            output = _calculator_crew(server).kickoff()
    assert output.raw == "2 + 3 = 5"
    spans = store.query_spans(run.rollout.rollout_id)
    assert all(s.rollout_id == run.rollout.rollout_id for s in spans)
    by_name = {s.name: s for s in spans}
    crew, task, agent = by_name["invoke_agent calc-crew"], by_name["invoke_agent addition"], by_name["invoke_agent calculator"]
    assert by_name["invoke_agent calc-run"].span_id == crew.parent_id
    assert task.parent_id == crew.span_id and agent.parent_id == task.span_id
    assert agent.attributes[semconv.GEN_AI_AGENT_NAME] == "calculator"
    assert agent.attributes[semconv.GEN_AI_REQUEST_MODEL] == MODEL

    chats = by_op(spans, semconv.OP_CHAT)
    assert len(chats) == len(server.chat_requests()) == 2
    assert all(c.parent_id == agent.span_id and c.name == f"chat {MODEL}" for c in chats)
    first, second = chats
    inputs = parse_json_attr(first.attributes[semconv.GEN_AI_INPUT_MESSAGES])
    assert "What is 2+3?" in inputs[-1]["parts"][0]["content"]
    assert "You are calculator" in first.attributes[semconv.GEN_AI_SYSTEM_INSTRUCTIONS]
    call = parse_json_attr(first.attributes[semconv.GEN_AI_OUTPUT_MESSAGES])[0]["parts"][0]
    assert call["type"] == "tool_call" and call["name"] == "add"
    assert first.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] > 0 and first.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    assert "add" in first.attributes[semconv.GEN_AI_TOOL_DEFINITIONS]
    assert parse_json_attr(second.attributes[semconv.GEN_AI_OUTPUT_MESSAGES])[0]["parts"][0]["content"] == "2 + 3 = 5"

    tool_span = by_name["execute_tool add"]
    assert tool_span.parent_id == agent.span_id
    assert_add_tool_call(tool_span, call["id"])

    for request in server.chat_requests():
        assert request["headers"]["traceparent"].split("-")[1] == agent.trace_id
        assert run.rollout.rollout_id in request["headers"]["baggage"]


def _team_responder(body: dict) -> str:
    system = body["messages"][0]["content"]
    return "DRAFT: a haiku about tests" if "You are writer" in system else "REVIEW: looks fine"


def test_selective_optimization_of_the_writer(store):
    instrument(["openai", "crewai"])
    with ScriptedOpenAI(_team_responder) as server:
        writer = Agent(role="writer", goal="write haikus", backstory="A poet.", llm=_llm(server))
        reviewer = Agent(role="reviewer", goal="review haikus", backstory="A critic.", llm=_llm(server))
        tasks = [
            Task(description="Write a haiku about tests.", expected_output="a haiku", agent=writer),
            Task(description="Review the haiku.", expected_output="a review", agent=reviewer),
        ]
        with agl.tracer.trace("team", "haiku") as run:
            output = Crew(agents=[writer, reviewer], tasks=tasks).kickoff()
    assert output.raw == "REVIEW: looks fine"
    spans = store.query_spans(run.rollout.rollout_id)
    writer_requests = [r for r in server.chat_requests() if "You are writer" in r["body"]["messages"][0]["content"]]
    assert len(writer_requests) == 1 and len(server.chat_requests()) == 2
    triplets = spans_to_triplets(spans, agents=["writer"])
    assert len(triplets) == 1
    assert triplets[0].agent_name == "writer"
    assert triplets[0].response_messages[-1]["content"] == "DRAFT: a haiku about tests"
    assert {t.agent_name for t in spans_to_triplets(spans)} == {"writer", "reviewer"}


def test_threaded_async_task_keeps_the_rollout(store):
    """`async_execution` tasks run on a thread CrewAI starts; the spans must stay in the rollout."""
    instrument(["openai", "crewai"])
    with ScriptedOpenAI(lambda body: "done") as server:
        agent = Agent(role="worker", goal="work", backstory="Busy.", llm=_llm(server))
        tasks = [
            Task(description="Do A.", expected_output="A", agent=agent, async_execution=True),
            Task(description="Do B.", expected_output="B", agent=agent),
        ]
        with agl.tracer.trace("threads") as run:
            Crew(agents=[agent], tasks=tasks).kickoff()
    spans = store.query_spans(run.rollout.rollout_id)
    assert len(by_op(spans, semconv.OP_CHAT)) == len(server.chat_requests()) == 2
    root = next(s for s in spans if s.name == "invoke_agent threads")
    assert {s.trace_id for s in spans} == {root.trace_id}


def test_uninstrument_restores_crewai(store):
    from crewai.agent.core import Agent as AgentClass

    original = AgentClass.__dict__["execute_task"]
    instrument(["openai", "crewai"])
    assert AgentClass.__dict__["execute_task"] is not original
    uninstrument()
    uninstrument()  # idempotent
    assert AgentClass.__dict__["execute_task"] is original
    with ScriptedOpenAI(calculator_responder) as server:
        with agl.tracer.trace("calc-run") as run:
            output = _calculator_crew(server).kickoff()
    assert output.raw == "2 + 3 = 5"
    assert len(server.chat_requests()) == 2
    assert "traceparent" not in server.chat_requests()[0]["headers"]
    assert [s.name for s in store.query_spans(run.rollout.rollout_id)] == ["invoke_agent calc-run"]


def test_instrumentation_never_raises_into_user_code(store, monkeypatch):
    from crewai.agent.core import Agent as AgentClass

    import agl_crewai.instrumentor
    import agl_crewai.spans

    original = AgentClass.__dict__["execute_task"]
    from agl_crewai.instrumentor import CrewAIInstrumentor

    CrewAIInstrumentor().instrument(skip_dep_check=True, tracer_provider=BrokenProvider())
    assert AgentClass.__dict__["execute_task"] is original
    CrewAIInstrumentor().uninstrument()

    instrument(["openai", "crewai"])
    # a span we cannot describe (here: the tool's) is skipped, the call goes on
    monkeypatch.setattr(agl_crewai.spans, "parse_json_attr", broken)
    with ScriptedOpenAI(calculator_responder) as server:
        with agl.tracer.trace("calc-run") as run:
            output = _calculator_crew(server).kickoff()
    assert output.raw == "2 + 3 = 5"
    names = [s.name for s in store.query_spans(run.rollout.rollout_id)]
    assert "invoke_agent calculator" in names and "execute_tool add" not in names

    # a tracer that fails to start spans: CrewAI still runs
    monkeypatch.setattr(agl_crewai.instrumentor._tracer, "start_span", broken)
    with ScriptedOpenAI(calculator_responder) as server:
        output = _calculator_crew(server).kickoff()
    assert output.raw == "2 + 3 = 5"
