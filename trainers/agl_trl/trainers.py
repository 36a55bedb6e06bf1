"""The Python API: ``GRPOTrainer``, ``RLOOTrainer``, ``SFTTrainer`` — an algorithm plus `fit()`.

``GRPOTrainer(config=RLConfig(...), store=None).train(agent, train_tasks=None, eval_tasks=None)``
trains `agent` — an `agl.Agent`, a ``@agl.rollout`` function or any ``agent(task, resources)`` —
and returns the run's summary (paths, held-out accuracies before/after, per eval set too). Tasks
are what `resolve_tasks` takes: task-set names, JSONL paths, `Task`s or dicts, alone or in a list;
left out, training uses the train splits of the sets `eval_tasks` names, else the built-in ``math``
set (and, when both are left out, its eval split for held-out evaluation). The same mapping serves ``agent-lightning train``: a config
file's ``training`` keys become the dataclass's fields (`config_from`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from agl_core.cli.config import Config, ConfigError, check_model_path
from agl_core.paths import default_run_dir
from agl_core.store.base import LightningStore
from agl_core.training.algorithm import Algorithm, fit
from agl_core.training.tasksets import TaskSpec, named_sets, resolve_tasks

from .config import RLConfig
from .sft import SFTConfig


def config_from(cls: type, config: Config) -> Any:
    """`cls` (RLConfig or SFTConfig) from a config file: ``training`` keys, ``model.path``, ``agent.optimize``.

    The ``training`` keys were validated by the schema registered in `agl_trl.plugin`; those left out
    (None) keep the dataclass's default. ``output_dir`` defaults to ``$AGL_HOME/runs/<agent>-<algorithm>``
    (stable, so ``--resume`` finds it) and is relative to the file.
    """
    if config.model.endpoint:
        raise ConfigError(f"model.endpoint: {config.training.algorithm} trains weights it serves itself; give model.path")
    values = config.training.model_dump(exclude_none=True, exclude={"n_workers", "runners"})  # runner options
    values["model"] = config.model.path
    if config.agent.optimize:
        values["optimize"] = list(config.agent.optimize)
    output_dir = values.get("output_dir")
    values["output_dir"] = str(
        config.resolve_path(output_dir) if output_dir else default_run_dir(config.agent.name, config.training.algorithm)
    )
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"training: {exc}") from None


class _Trainer:
    algorithm_name = ""
    config_class: type = RLConfig

    def __init__(self, config: Any = None, store: LightningStore | str | None = None, *, n_workers: int = 2) -> None:
        config = config if config is not None else self.config_class()
        if self.config_class is RLConfig and config.algorithm != self.algorithm_name:
            config = dataclasses.replace(config, algorithm=self.algorithm_name)
        self.config = config
        self.store = store
        self.n_workers = n_workers

    def algorithm(self, resume: bool = False) -> Algorithm:
        if self.config_class is SFTConfig:
            from .sft import SFTAlgorithm

            return SFTAlgorithm(self.config, resume=resume)
        from .rl import RLAlgorithm

        return RLAlgorithm(self.config, resume=resume)

    def train(
        self,
        agent: Any,
        train_tasks: TaskSpec = None,
        eval_tasks: TaskSpec = None,
        *,
        resume: bool = False,
    ) -> dict[str, Any]:
        """Train `agent`; returns the summary (``sampled_before``/``sampled_after``, ``greedy_*``, paths).

        ``eval_tasks=["sql-generation"]`` evaluates on that set's eval split (and, with no
        `train_tasks`, trains on its train split); an unknown name is a `ValueError` listing the
        known sets (before anything is loaded), and so is a model that is neither a folder, ``tiny``,
        a cached hub name nor one the hub can be reached for.
        """
        check_model_path(self.config.model, f"{type(self.config).__name__}.model")
        if train_tasks is None:
            train_tasks = named_sets(eval_tasks) or "math"
            if eval_tasks is None:
                eval_tasks = "math"
        train, held_out = resolve_tasks(train_tasks, "train"), resolve_tasks(eval_tasks, "eval")
        store = self.store if isinstance(self.store, LightningStore) else LightningStore(self.store)
        return fit(self.algorithm(resume), agent, store, train, held_out, n_workers=self.n_workers)


class GRPOTrainer(_Trainer):
    """GRPO: group mean/std advantages, token-level clipped loss (see `RLConfig`)."""

    algorithm_name = "grpo"


class RLOOTrainer(_Trainer):
    """RLOO: leave-one-out advantages, sequence-level clipped loss (see `RLConfig`)."""

    algorithm_name = "rloo"


class SFTTrainer(_Trainer):
    """SFT on good traces or a JSONL of conversations, with TRL's SFTTrainer (see `SFTConfig`)."""

    algorithm_name = "sft"
    config_class = SFTConfig


def rl_factory(config: Config, *, resume: bool = False) -> Algorithm:
    """``algorithm: grpo`` or ``rloo`` (the name travels in ``training.algorithm``)."""
    from .rl import RLAlgorithm

    return RLAlgorithm(config_from(RLConfig, config), resume=resume)


def sft_factory(config: Config, *, resume: bool = False) -> Algorithm:
    from .sft import SFTAlgorithm

    return SFTAlgorithm(config_from(SFTConfig, config), resume=resume)
