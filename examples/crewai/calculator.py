"""A CrewAI calculator crew, traced into Agent Lightning's store with no change to the crew.

    OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_API_KEY=... MODEL=gpt-4o-mini \
        .venv/bin/python -m examples.crewai.calculator "What is 17 * 23?" 391
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")

from crewai import LLM, Agent, Crew, Task  # noqa: E402
from crewai.tools import tool  # noqa: E402

import agentlightning as agl  # noqa: E402


@tool("multiply")
def multiply(a: float, b: float) -> float:
    """Multiply two numbers."""
    return a * b


@tool("add")
def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


def build_crew(question: str) -> Crew:
    llm = LLM(
        model=f"openai/{os.environ.get('MODEL', 'gpt-4o-mini')}",
        base_url=os.environ.get("OPENAI_BASE_URL"),
        api_key=os.environ.get("OPENAI_API_KEY", "none"),
    )
    calculator = Agent(
        role="calculator",
        goal="Answer arithmetic questions exactly",
        backstory="You always use your tools for arithmetic.",
        llm=llm,
        tools=[add, multiply],
    )
    task = Task(name="arithmetic", description=question, expected_output="the number", agent=calculator)
    return Crew(name="calculator-crew", agents=[calculator], tasks=[task])


def main(question: str, expected: str) -> None:
    agl.instrument(["crewai", "openai"])  # the plugins this crew uses (no argument: every installed one)
    with agl.tracer.trace("calculator", question) as run:
        answer = build_crew(question).kickoff().raw
        agl.emit_reward(1.0 if expected in answer else 0.0)
    print(answer)
    print(f"rollout {run.rollout.rollout_id}: spans in {run.rollout.store!r}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "What is 17 * 23?", sys.argv[2] if len(sys.argv) > 2 else "391")
