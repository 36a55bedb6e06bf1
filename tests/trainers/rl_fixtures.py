"""Shared pieces of the trainer tests: a tiny policy saved as a model folder, agents, tasks, configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

import agentlightning as agl
from agl_core.tracing import semconv
from agl_core.tracing.provider import get_tracer
from agl_trl.config import RLConfig
from tests.trainers import serve_model

#: Tasks the tiny policy knows: the calculator question (tool call when greedy) and the greeting.
CALC = {"question": "What is 2+3?", "answer": 5}
HI = {"question": "Say hi", "answer": 5}


def save_policy(path: Path) -> Path:
    """The serve tests' tiny memorising model, saved with ``save_pretrained`` (a few seconds)."""
    model, tokenizer = serve_model.build()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression."""
    a, _, b = expression.partition("+")
    return str(int(a) + int(b))


def calc_agent() -> agl.Agent:
    return agl.Agent("calc", "Use tools.", tools=[calculator], max_turns=2)


def length_reward(text: str) -> float:
    """A reward with variance on a tiny model's samples: even-length replies score."""
    return float(len(text) % 2 == 0)


def in_agent_span(name: str, fn: Any) -> Any:
    """Run `fn` inside an ``invoke_agent {name}`` span, as a multi-agent framework would."""
    with get_tracer().start_as_current_span(semconv.agent_span_name(name)) as span:
        span.set_attributes({semconv.GEN_AI_OPERATION_NAME: semconv.OP_INVOKE_AGENT, semconv.GEN_AI_AGENT_NAME: name})
        return fn()


def rl_config(model: Path, out: Path, **overrides: Any) -> RLConfig:
    values: dict[str, Any] = dict(
        model=str(model), episodes=1, batch_size=2, group_size=3, max_new_tokens=16, output_dir=str(out),
        eval_every=0, checkpoint_every=0, rollout_timeout_s=30.0, learning_rate=1e-2,
    )  # fmt: skip
    values.update(overrides)
    return RLConfig(**values)


def single_thread() -> Any:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: more threads only add contention on 2 cores
    return previous
