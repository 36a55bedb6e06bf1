"""Training algorithms by config name, as plugins register them (hook ``agl_register_algorithms``).

A registration says what the core needs to know about an algorithm without importing it:

- ``factory(config, *, resume) -> Algorithm`` builds it from a parsed ``config.yaml``; it imports
  the heavy dependencies (torch, an API client) when called, so registering stays cheap;
- ``schema``, a `TrainingOptions` subclass: the keys the ``training:`` section may hold for it;
- ``extra``, the pip extra that installs its dependencies (the core's install hint);
- ``section``, optionally a top-level config section of the same options (``apo:``) whose values
  win over ``training:``'s when the algorithm is the one selected.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model


class TrainingOptions(BaseModel):
    """The ``training:`` keys of every algorithm; an algorithm's schema adds its own options."""

    model_config = ConfigDict(extra="forbid")

    algorithm: str = "grpo"
    episodes: int = Field(default=1, ge=1)
    batch_size: int = Field(default=8, ge=1)
    output_dir: str | None = None
    seed: int = 0
    #: Runner threads executing the agent beside the algorithm.
    n_workers: int = Field(default=2, ge=1)
    #: ``local``: `n_workers` runner threads in the trainer; ``external``: none, `agent-lightning runner`
    #: processes on the same store execute the rollouts.
    runners: Literal["local", "external"] = "local"


@dataclass(frozen=True)
class AlgorithmSpec:
    name: str
    factory: Callable[..., Any]
    schema: type[TrainingOptions]
    extra: str | None = None
    section: str | None = None

    def install_hint(self) -> str:
        return f" (pip install 'agentlightning[{self.extra}]')" if self.extra else ""

    def section_schema(self) -> type[BaseModel]:
        """The model of `section`: the schema's keys but ``algorithm`` (the section cannot pick another one)."""
        return _section_schema(self.schema)


@functools.cache
def _section_schema(schema: type[TrainingOptions]) -> type[BaseModel]:
    fields: Any = {name: (info.annotation, info) for name, info in schema.model_fields.items() if name != "algorithm"}
    return create_model(f"{schema.__name__}Section", __config__=ConfigDict(extra="forbid"), **fields)


class AlgorithmRegistrar:
    """What ``agl_register_algorithms(registrar)`` receives; `add` one call per algorithm name."""

    def __init__(self) -> None:
        self.algorithms: dict[str, AlgorithmSpec] = {}

    def add(
        self,
        name: str,
        *,
        factory: Callable[..., Any],
        schema: type[TrainingOptions] = TrainingOptions,
        extra: str | None = None,
        section: str | None = None,
    ) -> None:
        if not (isinstance(schema, type) and issubclass(schema, TrainingOptions)):
            raise TypeError(f"algorithm {name!r}: schema must subclass agl_core.training.registry.TrainingOptions")
        # pluggy calls the plugins registered last first, so the earliest-registered plugin adds last
        # and keeps a contested name (as with the other registries, see `manager.merged`).
        self.algorithms[name] = AlgorithmSpec(name, factory, schema, extra, section)
