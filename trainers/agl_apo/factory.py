"""``algorithm: apo`` in a config file → an `APO` instance.

Settings are `APOOptions` (the `APOConfig` fields plus ``prompts``), from ``training`` and the
``apo`` section, which wins (`agl_core.cli.config.parse_config` merges them). ``apo.prompts`` maps
agent names to starting templates; the config's ``agent.system_prompt`` is the starting template of
``agent.name``. ``agent.optimize`` picks the agents to tune (default: ``agent.name``). `resume`
(``train --resume``) continues the run whose ``run.json`` is in ``training.output_dir`` (or the one
``apo.run_id`` names).
"""

from __future__ import annotations

import json
from typing import Any

from agl_apo.algorithm import APO
from agl_apo.config import APOConfig
from agl_core.cli.config import Config, ConfigError
from agl_core.types import LLMEndpoint, Resource


def build_apo(config: Config, *, resume: bool = False) -> APO:
    options = config.training.model_dump()
    settings: dict[str, Any] = {k: v for k, v in options.items() if k in APOConfig.field_names()}
    if settings["model"] is None:
        settings["model"] = config.model.name
    prompts = dict(options["prompts"])

    output_dir = config.resolve_path(config.training.output_dir) if config.training.output_dir else None
    if resume and not settings["run_id"]:
        meta = output_dir / "run.json" if output_dir else None
        if meta is None or not meta.is_file():
            raise ConfigError("--resume: set training.output_dir to an earlier APO run's directory (with run.json) or apo.run_id")
        settings["run_id"] = json.loads(meta.read_text())["run_id"]
    try:
        apo_config = APOConfig(**settings)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"apo: {exc}") from None

    if config.agent.system_prompt:
        prompts.setdefault(config.agent.name, config.agent.system_prompt)
    optimize = config.agent.optimize or [config.agent.name]
    missing = [name for name in optimize if name not in prompts]
    if missing:
        raise ConfigError(
            f"apo: no starting prompt for {missing}; set agent.system_prompt or apo.prompts.<agent name>"
        )
    resources: dict[str, Resource] = {}
    if config.model.endpoint:
        resources["llm"] = LLMEndpoint(
            endpoint=config.model.endpoint, model=config.model.name or config.model.path, api_key=config.model.api_key
        )
    return APO(apo_config, prompts=prompts, optimize=optimize, resources=resources, output_dir=output_dir)
