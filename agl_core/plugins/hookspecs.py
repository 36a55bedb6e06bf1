"""Hook specifications of the ``agentlightning`` pluggy project.

A plugin is a plain module with functions named after these hooks, decorated with
``agl_core.plugins.hookspecs.hookimpl``, registered under the ``agentlightning.plugins`` entry-point group.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

from agl_core.training.registry import AlgorithmRegistrar

PROJECT = "agentlightning"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def agl_framework_info() -> dict[str, Any] | None:
    """Describe the framework a plugin instruments.

    Return ``{"name": "crewai", "package": "crewai", "module": "crewai", "versions": ">=1.0,<2",
    "extra": "crewai"}``; ``package`` is the distribution whose presence means the framework is
    installed, ``module`` the import whose first execution triggers automatic instrumentation.
    """


@hookspec
def agl_instrument(frameworks: frozenset[str] | None) -> str | None:
    """Instrument your framework if `frameworks` is None or names it; return its name if you did."""


@hookspec
def agl_uninstrument() -> None:
    """Undo `agl_instrument`; must be safe to call when not instrumented."""


@hookspec
def agl_task_sets() -> dict[str, Callable[[], Any]] | None:
    """Named task sets: ``{"math": loader}``; ``loader(split, n)`` returns a list of `Task` (split: train/eval)."""


@hookspec
def agl_register_algorithms(registrar: AlgorithmRegistrar) -> None:
    """Register training algorithms by config name (``training.algorithm``)::

        registrar.add("grpo", factory=rl_factory, schema=RLOptions, extra="rl")

    ``factory(config, *, resume) -> Algorithm`` gets the parsed config and ``train --resume``; it
    imports the algorithm's dependencies itself, so a missing one is reported as ``pip install
    'agentlightning[<extra>]'``. ``schema`` subclasses `TrainingOptions` and validates the
    ``training:`` section (unknown keys are errors). ``section="apo"`` also accepts the same options
    in a top-level ``apo:`` section, which wins. See `agl_core.training.registry`.
    """


@hookspec
def agl_store_backends() -> dict[str, Any] | None:
    """Extra `LightningStore` backends by URL scheme: ``{"redis": RedisStore}`` (class or "mod:attr")."""


@hookspec
def agl_agent_types() -> dict[str, Callable[..., Any]] | None:
    """Agent builders by config ``agent.type``: ``{"openai": build}``; ``build(agent_config) -> agent``."""


@hookspec
def agl_cli_commands() -> list[Any] | None:
    """Click commands a plugin adds to ``agent-lightning`` (e.g. the RL trainer's ``serve``, ``export``).

    A command replaces the core's placeholder of the same name.
    """


@hookspec
def agl_exporters() -> dict[str, Callable[..., Any]] | None:
    """``agent-lightning export`` formats: ``{"hf": fn}``; ``fn(run, out, store, checkpoint) -> str`` (what was written).

    `run` is a run directory or run id as the user gave it; `out` the output directory; `checkpoint`
    (``--checkpoint``) is ``latest``, ``best`` or a step number, for formats that export a checkpoint:
    the others refuse any value but ``latest``.
    """
