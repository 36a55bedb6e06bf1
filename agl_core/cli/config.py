"""The ``config.yaml`` model: agent, model, training, environment, store.

``training:`` holds the common `TrainingOptions` plus the options of the selected algorithm, as the
schema it registered declares them (``agl_register_algorithms``); an algorithm may also own a
top-level section of the same options (APO's ``apo:``), which wins over ``training:``.

Validation errors name the field path and what was expected, e.g.
``training.batch_size: Input should be a valid integer (got 'eight')``; an unknown section or a
``model.path`` that cannot be loaded is one line (`check_model_path`).
"""

from __future__ import annotations

import difflib
import functools
import os
import reprlib
from pathlib import Path
from typing import Any, Literal, Sequence

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from agl_core.plugins.manager import algorithms
from agl_core.training.registry import AlgorithmSpec, TrainingOptions


class ConfigError(ValueError):
    """A config file that cannot be used; the message lists every problem by field path."""


#: Most values a config may hold once YAML aliases are expanded (a billion-laughs file is refused).
MAX_CONFIG_VALUES = 100_000
_MAX_PROBLEMS = 10  # listed in an "invalid config" error; the rest are counted


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


class EnvironmentConfig(_Section):
    #: A task-set name (``math``, ``coding``, ``reasoning``, ``sql-generation``, or one a plugin
    #: registers) or a JSONL path, or a list of them; each eval set is also reported on its own.
    train_tasks: str | list[str] | None = None
    eval_tasks: str | list[str] | None = None
    #: How many tasks each named set gives at most (JSONL files give all their lines); a small
    #: ``eval_size`` makes a quick smoke run.
    train_size: int = Field(default=256, ge=1)
    eval_size: int = Field(default=256, ge=1)


class Config(_Section):
    agent: AgentConfig = Field(default_factory=AgentConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    #: Validated against the selected algorithm's registered schema (see `parse_config`).
    training: TrainingOptions = Field(default_factory=TrainingOptions)
    environment: EnvironmentConfig = Field(default_factory=EnvironmentConfig)
    store: str | None = None

    #: Directory of the config file; relative paths in it resolve from here.
    base_dir: Path = Field(default=Path("."), exclude=True)

    def resolve_path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path


#: ``model.path`` values that mean the tiny model built on this machine (as ``agl_trl.loading`` reads them).
TINY_MODEL_NAMES = ("", "tiny")


def _hub_cached(name: str) -> bool:
    """Whether `name` is a hub model in the local Hugging Face cache (looked up offline)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # no trainer installed: nothing can load a hub model anyway
        return False
    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except ValueError:  # not a valid repo id (e.g. an absolute path)
        return False


def check_model_path(path: str, field: str = "model.path") -> None:
    """Refuse a model that cannot be loaded: a path that is no folder, or an uncached hub name with no hub to fetch it from.

    Checked before anything starts, so a typo is one line instead of a download retried for a minute
    and a traceback. A hub name (``org/name``) that is not in the local cache needs the hub: offline
    (``HF_HUB_OFFLINE=1``) or when one short probe of ``HF_ENDPOINT`` (default huggingface.co) gets
    no answer, it is refused; download it once with ``huggingface-cli download NAME`` where there is network.
    """
    if path in TINY_MODEL_NAMES or Path(path).expanduser().is_dir():
        return
    if not _looks_like_path(path) and (_hub_cached(path) or (not _hub_offline() and hub_reachable())):
        return
    raise ConfigError(f"{field}: no such folder {path!r} (and no network to fetch a hub model)")


def _looks_like_path(path: str) -> bool:
    """A hub id is ``name`` or ``org/name``; anything else (``/x``, ``./x``, ``~/x``, ``a/b/c``) is a path."""
    return path.startswith((".", "/", "~", "\\")) or path.count("/") > 1 or os.sep in path.replace("/", "")


def _hub_offline() -> bool:
    return any(os.environ.get(var, "").lower() in ("1", "true", "yes", "on") for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


#: How long the hub probe waits for an answer; the hub's own retries take a minute.
HUB_PROBE_TIMEOUT_S = 2.0


def hub_reachable() -> bool:
    """Whether the Hugging Face hub (``HF_ENDPOINT``, default huggingface.co) answers one HEAD request
    within `HUB_PROBE_TIMEOUT_S`; any HTTP status counts, proxies from the environment are used."""
    return _answers(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")


@functools.cache  # one probe per URL and process
def _answers(url: str) -> bool:
    try:
        httpx.head(url, timeout=HUB_PROBE_TIMEOUT_S)
    except httpx.HTTPError:
        return False
    return True


def section_names() -> list[str]:
    """The top-level sections a config may hold (algorithms may add their own, like ``apo``)."""
    fixed = (name for name, info in Config.model_fields.items() if not info.exclude)
    return sorted({*fixed, *(spec.section for spec in algorithms().values() if spec.section)})


def _check_sections(data: dict[Any, Any]) -> None:
    valid = section_names()
    for key in data:
        if key not in valid:
            close = difflib.get_close_matches(str(key), valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown section {key!r}{hint}; valid sections: {', '.join(valid)}")


def algorithm_spec(name: Any) -> AlgorithmSpec:
    """The registration of ``training.algorithm``; unknown names list what is registered."""
    specs = algorithms()
    if not isinstance(name, str) or name not in specs:
        known = ", ".join(sorted(specs)) or "none installed"
        raise ConfigError(f"training.algorithm: {name!r} is not available; available: {known}")
    return specs[name]


def _config_model(spec: AlgorithmSpec) -> type[Config]:
    """`Config` with `spec`'s training schema and the top-level sections algorithms registered."""
    fields: Any = {"training": (spec.schema, Field(default_factory=spec.schema))}
    for other in algorithms().values():
        if other.section:
            fields[other.section] = (other.section_schema(), Field(default_factory=other.section_schema()))
    return create_model("Config", __base__=Config, **fields)


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys of the section at `loc` (for an unknown-key error)."""
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return []
        model = field.annotation
    return sorted(name for name, info in model.model_fields.items() if not info.exclude)


def _describe(error: ValidationError, model: type[BaseModel]) -> str:
    lines = []
    errors = error.errors()
    for err in errors[:_MAX_PROBLEMS]:
        path = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"{path}: unknown key; known: {', '.join(_known_keys(model, err['loc'][:-1]))}")
            continue
        got = f" (got {reprlib.repr(err['input'])})" if err["type"] not in ("missing",) and "input" in err and not isinstance(err["input"], dict) else ""
        lines.append(f"{path}: {err['msg']}{got}")
    if len(errors) > _MAX_PROBLEMS:
        lines.append(f"… and {len(errors) - _MAX_PROBLEMS} more")
    return "\n".join(lines)


def _check_size(data: Any) -> None:
    """`ConfigError` for more than `MAX_CONFIG_VALUES` values (counted as expanded, stopping there)."""
    stack, seen = [data], 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > MAX_CONFIG_VALUES:
            raise ConfigError(f"config holds more than {MAX_CONFIG_VALUES} values (YAML aliases count as expanded)")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def parse_config(data: Any, base_dir: Path | str = ".") -> Config:
    """Validate a config mapping; the ``training:`` section against the selected algorithm's schema."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config must be a mapping of sections, got {type(data).__name__}")
    _check_sections(data)
    training = data.get("training")
    spec = algorithm_spec(training.get("algorithm", "grpo") if isinstance(training, dict) else "grpo")
    model = _config_model(spec)
    try:
        config = model.model_validate({**data, "base_dir": Path(base_dir)})
        if spec.section:  # the algorithm's own section wins over `training:`
            section = getattr(config, spec.section).model_dump(exclude_unset=True)
            merged = {**config.training.model_dump(exclude_unset=True), **section}
            config.training = spec.schema.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(f"invalid config:\n{_describe(exc, model)}") from None
    if not config.model.endpoint:  # with an endpoint, nothing is loaded from model.path
        check_model_path(config.model.path)
    return config


def apply_overrides(data: Any, overrides: Sequence[str]) -> Any:
    """`data` with each ``KEY=VALUE`` of `overrides` set (``--set training.episodes=2``).

    KEY is a dotted path whose missing sections are created; VALUE is parsed as YAML
    (``2`` is a number, ``[math, coding]`` a list, ``null`` None). Later overrides win.
    """
    data = {} if data is None else data
    if not isinstance(data, dict):
        return data  # `parse_config` says what is wrong with it
    for item in overrides:
        key, sep, raw = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE with a dotted KEY, e.g. training.episodes=2")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML: {exc}") from None
        section = data
        for i, part in enumerate(parts[:-1]):
            if section.get(part) is None:  # absent, or an empty section (``training:``)
                section[part] = {}
            section = section[part]
            if not isinstance(section, dict):
                raise ConfigError(f"--set {item!r}: {'.'.join(parts[: i + 1])} is not a section")
        section[parts[-1]] = value
    return data


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """The config at `path`, with the command line's ``--set KEY=VALUE`` `overrides` applied first."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except RecursionError:
        raise ConfigError(f"{path} is nested too deeply") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None
    _check_size(data)
    return parse_config(apply_overrides(data, overrides), path.parent.resolve())
