"""Agent Lightning: train any AI agent from its traces.

``import agentlightning as agl`` gives the whole public API; it needs only the base install.
Trainers and framework plugins load on first use and name the extra to install when missing.
"""

from __future__ import annotations

from typing import Any

from agl_core import __version__
from agl_core.paths import agl_home
from agl_core.plugins.manager import instrument, uninstrument
from agl_core.runtime.agent import Agent
from agl_core.runtime.runner import Runner, rollout
from agl_core.runtime.telemetry import configure, flush
from agl_core.runtime.tracer import tracer
from agl_core.store import LightningStore
from agl_core.tracing.context import current_resources, current_rollout
from agl_core.tracing.emit import (
    emit_annotation,
    emit_exception,
    emit_message,
    emit_object,
    emit_reward,
    emit_tool_call,
)
from agl_core.training.adapters import (
    rollout_triplets,
    spans_to_messages,
    spans_to_triplets,
)
from agl_core.training.sql_database import execute_sql, query_schema
from agl_core.training.tasksets import load_tasks
from agl_core.types import (
    Attempt,
    LLMEndpoint,
    ModelCheckpoint,
    PromptTemplate,
    Rollout,
    RolloutRequest,
    Span,
    Task,
    Triplet,
)

__all__ = [
    "__version__",
    "Agent",
    "agl_home",
    "Runner",
    "load_tasks",
    "rollout",
    "GRPOTrainer",
    "RLOOTrainer",
    "SFTTrainer",
    "RLConfig",
    "SFTConfig",
    "Attempt",
    "LLMEndpoint",
    "LightningStore",
    "ModelCheckpoint",
    "PromptTemplate",
    "Rollout",
    "RolloutRequest",
    "Span",
    "Task",
    "Triplet",
    "configure",
    "current_resources",
    "current_rollout",
    "emit_annotation",
    "emit_exception",
    "emit_message",
    "emit_object",
    "emit_reward",
    "emit_tool_call",
    "execute_sql",
    "flush",
    "instrument",
    "query_schema",
    "rollout_triplets",
    "spans_to_messages",
    "spans_to_triplets",
    "uninstrument",
    "tracer",
]

#: Trainer names resolved on first use, so that the base install never imports torch.
_TRAINERS = {
    "GRPOTrainer": "agl_trl",
    "RLOOTrainer": "agl_trl",
    "SFTTrainer": "agl_trl",
    "RLConfig": "agl_trl",
    "SFTConfig": "agl_trl",
}


def __getattr__(name: str) -> Any:
    module = _TRAINERS.get(name)
    if module is None:
        raise AttributeError(f"module 'agentlightning' has no attribute {name!r}")
    import importlib

    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise ImportError(f"{name} needs the RL trainer ({exc.name} is missing): pip install 'agentlightning[rl]'") from None
