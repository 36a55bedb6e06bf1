"""The ``agl_trl`` plugin of Agent Lightning (entry point ``agl_trl = "agl_trl.plugin"``).

A plain module of hookimpls; keep imports light — it loads with every ``agent-lightning`` command,
with or without torch: the ``training:`` schemas are here, the trainers load when a factory is called.
"""

from __future__ import annotations

from typing import Any, Literal

from agl_core.plugins.hookspecs import hookimpl
from agl_core.training.registry import AlgorithmRegistrar, TrainingOptions


class _PolicyOptions(TrainingOptions):
    """Keys GRPO, RLOO and SFT share. An option left out (None) takes the trainer's default, as
    `RLConfig`/`SFTConfig` document it; ``model.path`` and ``agent.optimize`` fill ``model``/``optimize``."""

    learning_rate: float | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_new_tokens: int | None = None
    save_total_limit: int | None = None
    rollout_timeout_s: float | None = None
    lora: bool | None = None
    lora_rank: int | None = None


class RLOptions(_PolicyOptions):
    """``training:`` of ``algorithm: grpo`` and ``rloo`` (the fields of `RLConfig`)."""

    group_size: int | None = None
    beta: float | None = None
    clip_eps: float | None = None
    clip_eps_high: float | None = None
    loss_type: Literal["dapo", "grpo", "dr_grpo"] | None = None
    scale_rewards: bool | None = None
    updates_per_batch: int | None = None
    max_grad_norm: float | None = None
    eval_every: int | None = None
    checkpoint_every: int | None = None
    aggregation: Literal["trajectory", "transition"] | None = None
    reward_policy: Literal["final", "per_call", "discounted"] | None = None
    gamma: float | None = None


class SFTOptions(_PolicyOptions):
    """``training:`` of ``algorithm: sft`` (the fields of `SFTConfig`)."""

    dataset: str | None = None
    traces_run: str | None = None
    reward_threshold: float | None = None
    samples_per_task: int | None = None
    epochs: float | None = None
    max_length: int | None = None


def _lazy(module: str, attr: str) -> Any:
    """A function that imports `module` (torch, trl) only when called."""

    def call(*args: Any, **kwargs: Any) -> Any:
        import importlib

        return getattr(importlib.import_module(module), attr)(*args, **kwargs)

    return call


@hookimpl
def agl_cli_commands() -> list[Any]:
    from agl_trl.serve.cli import serve

    return [serve]


@hookimpl
def agl_register_algorithms(registrar: AlgorithmRegistrar) -> None:
    for name in ("grpo", "rloo"):  # one factory: the algorithm name travels in training.algorithm
        registrar.add(name, factory=_lazy("agl_trl.trainers", "rl_factory"), schema=RLOptions, extra="rl")
    registrar.add("sft", factory=_lazy("agl_trl.trainers", "sft_factory"), schema=SFTOptions, extra="rl")


@hookimpl
def agl_exporters() -> dict[str, Any]:
    return {"hf": _lazy("agl_trl.export", "export_hf"), "lora": _lazy("agl_trl.export", "export_lora")}
