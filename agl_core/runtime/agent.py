"""`Agent`: a small tool-calling agent on the OpenAI chat API, trainable as it is.

``Agent(name, system_prompt, tools=[fn, ...])`` is callable as a runner agent
(``agent(task, resources) -> reward``): it talks to the rollout's LLM endpoint (else
``OPENAI_BASE_URL``), runs tool calls as ``execute_tool`` spans, and grades its final answer with
the task's grader. A `PromptTemplate` resource named after the agent (or ``system_prompt``)
replaces its system prompt, which is how APO tunes it.
"""

from __future__ import annotations

import contextlib
import inspect
import json
from typing import Any, Callable, Sequence

from opentelemetry import trace
from opentelemetry.trace import Span

from agl_core.runtime.graders import grade
from agl_core.tracing import genai, semconv
from agl_core.tracing.context import current_resources
from agl_core.tracing.emit import emit_reward, emit_tool_call
from agl_core.types import PromptTemplate, Resource

_JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean", list: "array", dict: "object"}


def tool_schema(fn: Callable[..., Any]) -> dict[str, Any]:
    """OpenAI function-tool definition from a Python function's signature and docstring."""
    params = {}
    required = []
    for name, param in inspect.signature(fn).parameters.items():
        params[name] = {"type": _JSON_TYPES.get(param.annotation, "string")}
        if param.default is inspect.Parameter.empty:
            required.append(name)
    return {
        "type": "function",
        "function": {
            "name": fn.__name__,
            "description": inspect.getdoc(fn) or fn.__name__,
            "parameters": {"type": "object", "properties": params, "required": required},
        },
    }


def task_question(task: Any) -> str:
    if isinstance(task, dict):
        for key in ("question", "input", "prompt", "query"):
            if key in task:
                return str(task[key])
        return json.dumps(task)
    return str(task)


class Agent:
    def __init__(
        self,
        name: str,
        system_prompt: str | None = None,
        tools: Sequence[Callable[..., Any]] = (),
        *,
        model: str | None = None,
        max_turns: int = 4,
        request: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.system_prompt = system_prompt
        self.tools = {t.__name__: t for t in tools}
        self.model = model
        self.max_turns = max_turns
        self.request = dict(request or {})

    def prompt(self, resources: dict[str, Resource] | None = None) -> str | None:
        resources = current_resources() if resources is None else resources
        for key in (self.name, "system_prompt", "prompt"):
            found = resources.get(key)
            if isinstance(found, PromptTemplate):
                return found.template
        return self.system_prompt

    def _run_tool(self, call: Any) -> str:
        name = call.function.name
        with genai.tool_span(name, arguments=call.function.arguments or "", call_id=call.id) as span:
            try:
                if name not in self.tools:
                    raise KeyError(f"unknown tool {name!r}")
                args = json.loads(call.function.arguments or "{}")
                result = str(self.tools[name](**args))
            except Exception as exc:  # the model sees the error and may recover
                result = f"error: {type(exc).__name__}: {exc}"
            genai.record_tool_result(span, result)
            return result

    def run(self, question: str, resources: dict[str, Resource] | None = None) -> str:
        """Answer one question, calling tools as the model asks; returns the final text."""
        messages: list[dict[str, Any]] = []
        system = self.prompt(resources)
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": question})
        tools = [tool_schema(t) for t in self.tools.values()] or None
        text = ""
        for _ in range(self.max_turns):
            response = emit_tool_call(self.model, messages, tools, **self.request)
            message = response.choices[0].message
            text = message.content or ""
            if not message.tool_calls:
                break
            messages.append(message.model_dump(exclude_none=True))
            for call in message.tool_calls:
                messages.append({"role": "tool", "tool_call_id": call.id, "content": self._run_tool(call)})
        return text

    def _agent_span(self) -> contextlib.AbstractContextManager[Span]:
        """The runner's root span when it already is this agent's ``invoke_agent`` (one span per
        agent run, as the span contract says), else a new one."""
        current = trace.get_current_span()
        if getattr(current, "name", None) == semconv.agent_span_name(self.name):
            return contextlib.nullcontext(current)
        return genai.agent_span(self.name)

    def __call__(self, task: Any, resources: dict[str, Resource]) -> float | None:
        with self._agent_span() as span:
            output = self.run(task_question(task), resources)
            genai.record_output(span, output)
        reward = grade(task, output)
        if reward is not None:
            emit_reward(reward)
        return reward
