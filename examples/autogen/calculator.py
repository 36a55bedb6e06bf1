"""An AutoGen calculator agent, traced into Agent Lightning's store with no change to the agent.

    OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_API_KEY=... MODEL=gpt-4o-mini \
        .venv/bin/python -m examples.autogen.calculator "What is 17 * 23?" 391
"""

from __future__ import annotations

import asyncio
import os
import sys

from autogen_agentchat.agents import AssistantAgent
from autogen_ext.models.openai import OpenAIChatCompletionClient

import agentlightning as agl


def multiply(a: float, b: float) -> float:
    """Multiply two numbers."""
    return a * b


def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


def build_agent() -> AssistantAgent:
    client = OpenAIChatCompletionClient(
        model=os.environ.get("MODEL", "gpt-4o-mini"),
        base_url=os.environ.get("OPENAI_BASE_URL"),
        api_key=os.environ.get("OPENAI_API_KEY", "none"),
        # lets any model name work against any OpenAI-compatible server
        model_info={"vision": False, "function_calling": True, "json_output": False, "family": "unknown", "structured_output": False},
    )
    return AssistantAgent(
        "calculator",
        model_client=client,
        tools=[add, multiply],
        system_message="Use the tools for arithmetic, then state the result.",
        reflect_on_tool_use=True,
    )


async def main(question: str, expected: str) -> None:
    agl.instrument(["autogen", "openai"])  # the plugins this agent uses (no argument: every installed one)
    async with agl.tracer.trace("calculator", question) as run:
        result = await build_agent().run(task=question)
        answer = str(result.messages[-1].content)
        agl.emit_reward(1.0 if expected in answer else 0.0)
    print(answer)
    print(f"rollout {run.rollout.rollout_id}: spans in {run.rollout.store!r}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "What is 17 * 23?", sys.argv[2] if len(sys.argv) > 2 else "391"))
