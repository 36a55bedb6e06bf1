"""The demo's task: two-operand arithmetic an agent should hand to a calculator tool, and the
tiny model warm-started on it (`build_policy`).

Numbers are big enough (2-3 digits) that answering from memory is usually wrong, so the
policy choice that matters is *calling the calculator* — the thing RL has to learn.
Held-out tasks are a fixed, seeded set that every training generator excludes.

The calculator is bound to the question the agent was asked (it takes no arguments) and its
result is the agent's answer. That keeps the task about the decision, not about copying digits:
a ~1M-parameter model warm-started for a minute does not learn to copy numbers reliably, and a
policy that cannot succeed gives RL nothing to reinforce.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agl_trl.tiny_model import TinyModelSpec, WarmStart, build_tiny_model

SYSTEM_PROMPT = "Solve the arithmetic problem."

CALCULATOR_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Compute the exact answer to the question.",
        "parameters": {"type": "object", "properties": {}},
    },
}

_OPERATORS = {"+": (100, 999), "-": (100, 999), "*": (100, 999)}
_EXPRESSION = re.compile(r"^\s*(-?\d+)\s*([-+*])\s*(-?\d+)\s*$")


@dataclass(frozen=True)
class ArithTask:
    """One problem, e.g. ``ArithTask(37, "*", 48)``; its question, expression and answer derive from it."""

    a: int
    op: str
    b: int

    @property
    def expression(self) -> str:
        return f"{self.a}{self.op}{self.b}"

    @property
    def question(self) -> str:
        return f"What is {self.expression}?"

    @property
    def answer(self) -> int:
        return calculate(self.expression)


def calculate(expression: str) -> int:
    """The calculator tool: evaluates ``a op b`` for integers (no ``eval``)."""
    match = _EXPRESSION.match(expression)
    if match is None:
        raise ValueError(f"not a two-operand expression: {expression!r}")
    a, op, b = int(match[1]), match[2], int(match[3])
    return a + b if op == "+" else a - b if op == "-" else a * b


def _random_task(rng: random.Random) -> ArithTask:
    op = rng.choice(sorted(_OPERATORS))
    low, high = _OPERATORS[op]
    return ArithTask(rng.randint(low, high), op, rng.randint(low, high))


def heldout_tasks(n: int = 256, seed: int = 1234) -> list[ArithTask]:
    """``n`` distinct held-out tasks; the same for a given seed on every machine."""
    rng = random.Random(seed)
    tasks: dict[ArithTask, None] = {}
    while len(tasks) < n:
        tasks[_random_task(rng)] = None
    return list(tasks)


def train_tasks(seed: int, exclude: set[ArithTask] | list[ArithTask]) -> Iterator[ArithTask]:
    """An endless stream of training tasks, never one in ``exclude`` (pass the held-out set)."""
    rng, excluded = random.Random(seed), set(exclude)
    while True:
        task = _random_task(rng)
        if task not in excluded:
            yield task


def prompt_messages(task: ArithTask) -> list[dict[str, Any]]:
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": task.question}]


def final_answer(value: int) -> str:
    return f"The answer is {value}."


def tool_call(call_id: str = "call_0") -> dict[str, Any]:
    """An OpenAI-shaped calculator call (arguments as a JSON string, as the API sends them)."""
    return {"id": call_id, "type": "function", "function": {"name": "calculator", "arguments": "{}"}}


def warmstart_conversation(task: ArithTask, use_tool: bool) -> list[dict[str, Any]]:
    """A demonstration: either the calculator call (whose result the agent returns) or an answer
    "from memory" (always the true answer — the tiny model still gets most of these wrong)."""
    messages = prompt_messages(task)
    if not use_tool:
        return [*messages, {"role": "assistant", "content": final_answer(task.answer)}]
    return [*messages, {"role": "assistant", "content": "", "tool_calls": [tool_call()]}]


def warmstart_conversations(
    n: int, seed: int, tool_rate: float, exclude: set[ArithTask] | list[ArithTask]
) -> list[list[dict[str, Any]]]:
    """``n`` demonstrations; a fraction ``tool_rate`` call the calculator, independently of the task, so
    the warm-started policy calls it with about that probability and answers from memory otherwise."""
    rng = random.Random(seed + 1)
    tasks = train_tasks(seed, exclude)
    return [warmstart_conversation(next(tasks), rng.random() < tool_rate) for _ in range(n)]


_LAST_INT = re.compile(r"-?\d+")


def reward(final_text: str | None, task: ArithTask) -> float:
    """1.0 when the last integer in the agent's final reply is the right answer, else 0.0."""
    numbers = _LAST_INT.findall(final_text or "")
    return float(bool(numbers) and int(numbers[-1]) == task.answer)


#: How often the warm-started policy calls the calculator (sampled at temperature 1): below 0.5, so
#: the greedy policy answers from memory and RL has a real choice to teach.
TOOL_RATE = 0.3
HELDOUT_SEED = 1234


def warmstart_corpus(n: int = 9600, tool_rate: float = TOOL_RATE, seed: int = 0) -> WarmStart:
    """The tiny model's warm start for this task: `n` demonstrations, none of a held-out task."""
    if not 0 < tool_rate < 1:
        raise ValueError("tool_rate must be in (0, 1)")
    chats = warmstart_conversations(n, seed=seed, tool_rate=tool_rate, exclude=heldout_tasks(seed=HELDOUT_SEED))
    return WarmStart(chats, [CALCULATOR_TOOL])


def build_policy() -> Path:
    """The demo's policy: the tiny model warm-started on this task (built once, then cached)."""
    spec = TinyModelSpec(name="tiny-calc")
    return build_tiny_model(spec, warmstart_corpus(spec.warmstart_steps * spec.batch_size, seed=spec.seed))
