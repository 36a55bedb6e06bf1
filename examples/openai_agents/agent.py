"""An OpenAI Agents SDK calculator agent traced by Agent Lightning (agent, chat and tool spans)."""

import asyncio
import os

import agents
from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool
from openai import AsyncOpenAI

import agentlightning as agl


@function_tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


async def main() -> None:
    # The SDK's own exporter sends traces to api.openai.com; Agent Lightning's processor replaces it.
    agents.set_trace_processors([])
    agl.instrument(["openai_agents"])
    model = OpenAIChatCompletionsModel(model=os.environ.get("MODEL", "gpt-4o-mini"), openai_client=AsyncOpenAI())
    agent = Agent(name="calculator", instructions="Use the add tool for sums.", tools=[add], model=model)
    async with agl.tracer.trace("calculator-session", {"question": "What is 17 + 25?"}) as rollout:
        result = await Runner.run(agent, "What is 17 + 25?")
        agl.emit_reward(1.0 if "42" in str(result.final_output) else 0.0)
    print(result.final_output)
    print("rollout:", rollout.rollout.rollout_id)


if __name__ == "__main__":
    asyncio.run(main())
