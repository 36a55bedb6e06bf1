"""`APOConfig`: the knobs of the beam search, and `APOOptions`, their ``config.yaml`` schema."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import create_model

from agl_core.training.registry import TrainingOptions


@dataclass
class APOConfig:
    """Settings of one APO run; every default is what ``algorithm: apo`` uses when the key is absent."""

    #: Candidates kept after each round (the beam).
    beam_width: int = 4
    #: Children proposed per beam member per round (one critic + one editor call each).
    branch_factor: int = 4
    #: Rounds of expansion after the seed prompt is scored.
    beam_rounds: int = 3
    #: Training tasks per round whose traces the critic reads (run once per beam member).
    gradient_batch_size: int = 4
    #: Validation tasks every candidate is scored on (the same tasks all run long, so scores compare).
    val_batch_size: int = 16
    #: Most rollouts (training + validation) the run may spend; None means no limit.
    rollout_budget: int | None = 1000
    #: Rounds without a better validation score before the search stops early.
    patience: int = 2
    #: Critic/editor model; None falls back to ``model.name`` in the config, then ``gpt-4.1-mini``.
    model: str | None = None
    #: Critic/editor OpenAI-compatible base URL; None means ``OPENAI_BASE_URL`` (or api.openai.com).
    endpoint: str | None = None
    #: Critic/editor API key; None means ``OPENAI_API_KEY``.
    api_key: str | None = None
    #: Sampling temperature of the critic and editor (diversity between a parent's children).
    temperature: float = 1.0
    #: Retries of one critic/editor call on 429, 5xx, connection errors and timeouts.
    max_retries: int = 4
    #: First backoff delay in seconds (doubles per retry, capped at `max_backoff_s`); 429s wait for Retry-After instead.
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    #: Timeout of one critic/editor request, seconds.
    request_timeout_s: float = 120.0
    #: Timeout of one agent rollout, seconds (unfinished rollouts are cancelled and score zero).
    rollout_timeout_s: float | None = 300.0
    #: Parallel critic/editor requests.
    max_parallel_llm: int = 8
    #: Seeds the validation sample and each round's training batch, so a resumed run sees the same tasks.
    seed: int = 0
    #: An earlier run to resume (its stored candidates rebuild the beam).
    run_id: str | None = None

    def __post_init__(self) -> None:
        for name in ("beam_width", "branch_factor", "beam_rounds", "gradient_batch_size", "val_batch_size", "patience"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.rollout_budget is not None and (not isinstance(self.rollout_budget, int) or self.rollout_budget < 1):
            raise ValueError(f"rollout_budget must be a positive integer or null, got {self.rollout_budget!r}")
        if self.max_retries < 0 or self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ValueError("max_retries, backoff_s and max_backoff_s must not be negative")

    @classmethod
    def field_names(cls) -> frozenset[str]:
        return frozenset(f.name for f in dataclasses.fields(cls))


def _options_schema() -> type[TrainingOptions]:
    hints = typing.get_type_hints(APOConfig)
    fields: Any = {
        f.name: (hints[f.name], f.default) for f in dataclasses.fields(APOConfig) if f.name not in TrainingOptions.model_fields
    }
    #: Starting templates by agent name (``agent.system_prompt`` is the one of ``agent.name``).
    fields["prompts"] = (dict[str, str], {})
    return create_model("APOOptions", __base__=TrainingOptions, **fields)


#: ``training:`` (and ``apo:``) of ``algorithm: apo``: the fields of `APOConfig` plus ``prompts``.
APOOptions = _options_schema()
