"""What the critic and the editor are asked, and how their answers are read.

The critic sees the prompt under optimization and a few traces of it (worst first, then the best)
rebuilt from spans by the adapter, and answers with a textual gradient: what in the prompt made
the bad traces go wrong. The editor applies that gradient and returns the whole new prompt between
``<prompt>`` tags, so chatter around it is ignored.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass
from typing import Any, Sequence

CRITIC_SYSTEM = (
    "You critique the system prompt of an AI agent. You are shown the prompt and traces of the agent "
    "running with it, each with the task and the reward it earned (1 is best). Explain concisely which "
    "instructions are missing, wrong or unclear in the prompt, so that the low-reward traces would have "
    "earned a high reward. Give reasons that generalize to other tasks; do not rewrite the prompt."
)

EDITOR_SYSTEM = (
    "You edit the system prompt of an AI agent. Apply the feedback to the prompt, keep what already "
    "works and keep every {placeholder} unchanged. Answer with the complete new prompt between "
    "<prompt> and </prompt>, and nothing else."
)

#: Characters of one trace (task input or one message) shown to the critic.
MAX_FIELD_CHARS = 2000


@dataclass
class Trace:
    """One rollout as the critic sees it: what the task was, what the agent said, what it earned."""

    task_input: Any
    reward: float | None
    messages: list[dict[str, Any]]


def _clip(text: str) -> str:
    return text if len(text) <= MAX_FIELD_CHARS else text[:MAX_FIELD_CHARS] + " …[truncated]"


def _content(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        content = " ".join(str(part.get("text", part)) if isinstance(part, dict) else str(part) for part in content)
    text = str(content or "")
    if message.get("tool_calls"):
        text += " [tool calls: " + json.dumps(message["tool_calls"], default=str) + "]"
    return _clip(text)


def render_trace(index: int, trace: Trace) -> str:
    reward = "failed" if trace.reward is None else f"{trace.reward:g}"
    lines = [f"### Trace {index} (reward {reward})", "Task input: " + _clip(json.dumps(trace.task_input, default=str))]
    lines += [f"[{m.get('role', '?')}] {_content(m)}" for m in trace.messages] or ["(no LLM call by this agent)"]
    return "\n".join(lines)


def critic_messages(agent: str, prompt: str, traces: Sequence[Trace]) -> list[dict[str, str]]:
    body = "\n\n".join(render_trace(i + 1, t) for i, t in enumerate(traces))
    user = f"Agent: {agent}\n\n<current_prompt>\n{prompt}\n</current_prompt>\n\n{body}"
    return [{"role": "system", "content": CRITIC_SYSTEM}, {"role": "user", "content": user}]


def editor_messages(agent: str, prompt: str, gradient: str) -> list[dict[str, str]]:
    user = f"Agent: {agent}\n\n<current_prompt>\n{prompt}\n</current_prompt>\n\n<feedback>\n{gradient}\n</feedback>"
    return [{"role": "system", "content": EDITOR_SYSTEM}, {"role": "user", "content": user}]


_PROMPT_TAG = re.compile(r"<prompt>(.*?)(?:</prompt>|$)", re.S)


def parse_edited_prompt(text: str) -> str | None:
    """The prompt between ``<prompt>`` tags (a missing closing tag is forgiven); None if there is none."""
    match = _PROMPT_TAG.search(text)
    prompt = match.group(1).strip() if match else ""
    return prompt or None


def placeholders(template: str) -> set[str] | None:
    """The ``{names}`` of an f-string template; None when the braces do not parse."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError:
        return None
