"""From a `Config` to the things that run: the agent, the task sets, the algorithm."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

from agl_core.cli.config import Config, ConfigError, algorithm_spec
from agl_core.plugins.manager import merged
from agl_core.runtime.agent import Agent
from agl_core.runtime.runner import RolloutAgent, as_agent
from agl_core.training.algorithm import Algorithm
from agl_core.training.tasksets import TaskSpec, named_sets, resolve_tasks
from agl_core.types import Task


def import_object(spec: str, base_dir: Any = None) -> Any:
    """``module:attr`` (or ``path/to/file.py:attr``) → the object."""
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise ConfigError(f"expected 'module:attribute', got {spec!r}")
    if base_dir is not None and str(base_dir) not in sys.path:
        sys.path.insert(0, str(base_dir))
    try:
        module = importlib.import_module(module_name.removesuffix(".py").replace("/", "."))
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r} for {spec!r}: {exc}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"{module_name!r} has no attribute {attr!r}") from None


def build_agent(config: Config) -> RolloutAgent:
    agent = config.agent
    if agent.type == "openai":
        return as_agent(Agent(agent.name, agent.system_prompt, model=config.model.name))
    if agent.type == "python":
        return RolloutAgent(fn=as_agent(import_object(agent.entrypoint or "", config.base_dir)), name=agent.name)
    if agent.type == "command":
        from agl_core.runtime.program import CommandAgent

        reward = import_object(agent.reward, config.base_dir) if agent.reward else None
        return as_agent(CommandAgent(agent.name, agent.command or "", reward=reward, cwd=config.base_dir))
    builders = merged("agl_agent_types")
    if agent.type in builders:
        return as_agent(builders[agent.type](agent))
    raise ConfigError(f"agent.type: unknown agent type {agent.type!r}")


def build_tasks(config: Config, split: str) -> list[Task]:
    """The tasks of ``environment.train_tasks``/``eval_tasks``: one name or path, or a list of them.
    Without ``train_tasks``, training uses the train splits of the sets ``eval_tasks`` names."""
    env = config.environment
    spec: TaskSpec
    if split == "train":
        spec, n = (env.train_tasks if env.train_tasks is not None else named_sets(env.eval_tasks)), env.train_size
    else:
        spec, n = env.eval_tasks, env.eval_size
    try:
        return resolve_tasks(spec, split, n=n, base_dir=config.base_dir)
    except ValueError as exc:
        raise ConfigError(f"environment.{split}_tasks: {exc}") from None


def check_runners(config: Config, store_url: str) -> None:
    """``training.runners: external`` needs a store the runners reach from their own processes."""
    if config.training.runners == "external" and store_url.startswith("memory:"):
        raise ConfigError(
            "training.runners: external runners cannot reach a memory:// store; use the collector's http://…, "
            "postgresql://… or sqlite:///…"
        )


def dependency_missing(exc: ModuleNotFoundError) -> bool:
    """Whether `exc` means a package is not installed (not that a module of an installed one is broken)."""
    top = (exc.name or "").partition(".")[0]
    return bool(top) and importlib.util.find_spec(top) is None


def build_algorithm(config: Config, *, resume: bool = False) -> Algorithm:
    """The configured algorithm; `resume` (``train --resume``) continues the run in its output directory."""
    spec = algorithm_spec(config.training.algorithm)
    try:
        return spec.factory(config, resume=resume)
    except ModuleNotFoundError as exc:  # the factory imports the algorithm's dependencies
        if not dependency_missing(exc):
            raise
        raise ConfigError(
            f"training.algorithm: {spec.name!r} is not available{spec.install_hint()}: no module named {exc.name!r}"
        ) from None
