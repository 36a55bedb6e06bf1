"""A Microsoft Agent Framework calculator agent, traced into Agent Lightning's store unchanged.

    OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_API_KEY=... MODEL=gpt-4o-mini \
        .venv/bin/python -m examples.agent_framework.calculator "What is 17 * 23?" 391
"""

from __future__ import annotations

import asyncio
import os
import sys

from agent_framework import Agent, tool
from agent_framework.openai import OpenAIChatCompletionClient

import agentlightning as agl


@tool
def multiply(a: float, b: float) -> float:
    """Multiply two numbers."""
    return a * b


@tool
def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


def build_agent() -> Agent:
    client = OpenAIChatCompletionClient(
        model=os.environ.get("MODEL", "gpt-4o-mini"),
        base_url=os.environ.get("OPENAI_BASE_URL"),
        api_key=os.environ.get("OPENAI_API_KEY", "none"),
    )
    return Agent(
        client=client,
        name="calculator",
        instructions="Use the tools for arithmetic, then state the result.",
        tools=[add, multiply],
    )


async def main(question: str, expected: str) -> None:
    agl.instrument(["agent_framework", "openai"])  # the plugins this agent uses (no argument: every installed one)
    async with agl.tracer.trace("calculator", question) as run:
        answer = (await build_agent().run(question)).text
        agl.emit_reward(1.0 if expected in answer else 0.0)
    print(answer)
    print(f"rollout {run.rollout.rollout_id}: spans in {run.rollout.store!r}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "What is 17 * 23?", sys.argv[2] if len(sys.argv) > 2 else "391"))
