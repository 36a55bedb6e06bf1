"""A LangGraph ReAct calculator agent traced by Agent Lightning (agent, chat and tool spans)."""

import os

from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.prebuilt import create_react_agent

import agentlightning as agl


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


if __name__ == "__main__":
    agl.instrument(["langchain", "openai"])
    llm = ChatOpenAI(model=os.environ.get("MODEL", "gpt-4o-mini"))  # OPENAI_BASE_URL / OPENAI_API_KEY
    agent = create_react_agent(llm, [add], name="calculator")
    with agl.tracer.trace("calculator-session", {"question": "What is 17 + 25?"}) as rollout:
        answer = agent.invoke({"messages": [("user", "What is 17 + 25?")]})["messages"][-1].content
        agl.emit_reward(1.0 if "42" in answer else 0.0)
    print(answer)
    print("rollout:", rollout.rollout.rollout_id)
