"""A calculator agent on the plain openai client, traced by Agent Lightning without code changes
to the agent loop itself: `agl.instrument()` records every LLM call as a `chat` span."""

import json
import os

import openai

import agentlightning as agl

MODEL = os.environ.get("MODEL", "gpt-4o-mini")
TOOLS = [{"type": "function", "function": {"name": "add", "description": "Add two integers.", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}}]


def run(question: str) -> str:
    client = openai.OpenAI()  # OPENAI_BASE_URL / OPENAI_API_KEY
    messages = [{"role": "system", "content": "Use the add tool for sums."}, {"role": "user", "content": question}]
    for _ in range(5):  # bounded tool loop
        reply = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS).choices[0].message
        if not reply.tool_calls:
            return reply.content or ""
        messages.append(reply.model_dump(exclude_none=True))
        for call in reply.tool_calls:
            messages.append({"role": "tool", "tool_call_id": call.id, "content": call_tool(call.function.name, call.function.arguments)})
    return ""


def call_tool(name: str, arguments: str) -> str:
    """The tool's result, or the error the model gets to read (a small model may call a tool wrongly)."""
    if name != "add":
        return f"error: there is no tool {name!r}; the tool is add(a, b)"
    try:
        args = json.loads(arguments)
        return str(int(args["a"]) + int(args["b"]))
    except (KeyError, TypeError, ValueError) as exc:
        return f"error: add needs integer arguments a and b ({type(exc).__name__}: {exc})"


if __name__ == "__main__":
    agl.instrument(["openai"])
    with agl.tracer.trace("calculator", {"question": "What is 17 + 25?"}) as rollout:
        answer = run("What is 17 + 25?")
        agl.emit_reward(1.0 if "42" in answer else 0.0)
    print(answer)
    print("rollout:", rollout.rollout.rollout_id)
