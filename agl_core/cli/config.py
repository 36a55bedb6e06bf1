"""The ``config.yaml`` model: agent, model, training, environment, store.

Validation errors name the field path and what was expected, e.g.
``training.batch_size: Input should be a valid integer (got 'eight')``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ConfigError(ValueError):
    """A config file that cannot be used; the message lists every problem by field path."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgentConfig(_Section):
    name: str = "agent"
    type: Literal["openai", "python", "command"] = "openai"
    #: ``module:function`` of a Python agent ``def agent(task, resources) -> float | None``.
    entrypoint: str | None = None
    #: A program to run per task, e.g. ``python my_agent.py {input}`` (type ``command``).
    command: str | None = None
    #: ``module:function`` scoring a command's output: ``reward(task, output) -> float``.
    reward: str | None = None
    system_prompt: str | None = None
    #: Names of the agents whose LLM calls are trained (selective optimization); None = all.
    optimize: list[str] | None = None

    @model_validator(mode="after")
    def _needs(self) -> "AgentConfig":
        if self.type == "python" and not self.entrypoint:
            raise ValueError("agent.type 'python' needs agent.entrypoint ('module:function')")
        if self.type == "command" and not self.command:
            raise ValueError("agent.type 'command' needs agent.command (e.g. 'python my_agent.py {input}')")
        return self


class ModelConfig(_Section):
    #: A Hugging Face name or local path, or ``tiny`` for the model built on this machine.
    path: str = "tiny"
    #: An OpenAI-compatible endpoint to use instead of serving `path` ourselves (APO, eval).
    endpoint: str | None = None
    api_key: str | None = None
    name: str | None = None


class TrainingConfig(BaseModel):
    """Common training keys; algorithm-specific keys are allowed and passed to the trainer."""

    model_config = ConfigDict(extra="allow")

    algorithm: str = "grpo"
    episodes: int = Field(default=1, ge=1)
    batch_size: int = Field(default=8, ge=1)
    output_dir: str | None = None
    seed: int = 0
    n_workers: int = Field(default=2, ge=1)


class EnvironmentConfig(_Section):
    #: A task set name registered by a plugin (``math``, ``coding``, ``reasoning``) or a JSONL path.
    train_tasks: str | None = None
    eval_tasks: str | None = None


class Config(_Section):
    agent: AgentConfig = Field(default_factory=AgentConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    environment: EnvironmentConfig = Field(default_factory=EnvironmentConfig)
    store: str | None = None
    apo: dict[str, Any] = Field(default_factory=dict)

    #: Directory of the config file; relative paths in it resolve from here.
    base_dir: Path = Field(default=Path("."), exclude=True)

    def resolve_path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path


def _describe(error: ValidationError) -> str:
    lines = []
    for err in error.errors():
        path = ".".join(str(p) for p in err["loc"]) or "(top level)"
        got = f" (got {err['input']!r})" if err["type"] not in ("missing",) and "input" in err and not isinstance(err["input"], dict) else ""
        lines.append(f"{path}: {err['msg']}{got}")
    return "\n".join(lines)


def parse_config(data: Any, base_dir: Path | str = ".") -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config must be a mapping of sections, got {type(data).__name__}")
    try:
        return Config.model_validate({**data, "base_dir": Path(base_dir)})
    except ValidationError as exc:
        raise ConfigError(f"invalid config:\n{_describe(exc)}") from None


def load_config(path: str | Path) -> Config:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    return parse_config(data, path.parent.resolve())
