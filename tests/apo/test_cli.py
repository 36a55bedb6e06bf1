"""The example through the CLI: `train --config` with algorithm apo, then `export --format prompt`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agl_apo.factory import build_apo
from agl_core.cli.config import ConfigError, load_config, parse_config
from tests.apo.scripted_rooms import EXAMPLE_DIR, RULES, rules_in

CLI = [sys.executable, "-c", "from agl_core.cli.main import main; main()"]


def test_train_and_export_the_example(server, tmp_path):
    env = {**os.environ, "AGL_HOME": str(tmp_path / "home"), "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "test"}
    env.pop("AGL_STORAGE", None)
    store = f"sqlite:///{tmp_path / 'store.db'}"
    train = subprocess.run(
        CLI + ["train", "--config", str(EXAMPLE_DIR / "config.yaml"), "--store", store],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    summary = json.loads(train.stdout[train.stdout.index("{"):])
    assert summary["seed_score"] < 0.5 and summary["best_score"] == 1.0
    run_dir = Path(summary["output_dir"])
    assert json.loads((run_dir / "run.json").read_text())["run_id"] == summary["run_id"]

    out = tmp_path / "export"
    export = subprocess.run(
        CLI + ["export", "--run", str(run_dir), "--format", "prompt", "--out", str(out), "--store", store],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert export.returncode == 0, export.stderr[-3000:]
    best = json.loads((out / "best_prompt.json").read_text())
    assert best["run_id"] == summary["run_id"] and best["score"] == 1.0 and best["seed_score"] == summary["seed_score"]
    assert rules_in(best["prompts"]["room_selector"]) == set(RULES)
    text = (out / "best_prompt.txt").read_text()
    assert "best validation score 1.000" in text and best["prompts"]["room_selector"] in text
    history = json.loads((out / "history.json").read_text())
    assert len(history) == summary["candidates"] and history[0]["parent"] is None
    assert all(c["parent"] in {h["candidate_id"] for h in history} for c in history[1:])
    assert (out / "history.txt").read_text().count("[round") == len(history)

    # `agent-lightning eval --checkpoint RUN_DIR` evaluates with the run's best prompt
    apo = build_apo(load_config(EXAMPLE_DIR / "config.yaml"))
    with apo.eval_resources(str(run_dir)) as resources:
        assert resources["room_selector"].template == best["prompts"]["room_selector"]
    with apo.eval_resources() as resources:
        assert rules_in(resources["room_selector"].template) == set()


def test_config_settings_merge_and_unknown_keys_are_named(tmp_path):
    config = parse_config(
        {
            "agent": {"name": "sel", "system_prompt": "pick", "optimize": ["sel"]},
            "model": {"name": "m", "endpoint": "http://127.0.0.1:9/v1"},
            "training": {"algorithm": "apo", "beam_width": 2, "val_batch_size": 3, "seed": 7},
            "apo": {"val_batch_size": 5, "prompts": {"other": "fixed"}},
        }
    )
    apo = build_apo(config)
    assert (apo.config.beam_width, apo.config.val_batch_size, apo.config.seed, apo.config.model) == (2, 5, 7, "m")
    assert apo.optimize == ["sel"] and set(apo.templates) == {"sel", "other"}
    assert apo.resources["llm"].endpoint == "http://127.0.0.1:9/v1"
    with pytest.raises(ConfigError, match="apo.beam_widht: unknown key; known: .*beam_width"):
        parse_config({"agent": {"system_prompt": "p"}, "training": {"algorithm": "apo"}, "apo": {"beam_widht": 2}})
    with pytest.raises(ConfigError, match=r"training.beam_width: Input should be a valid integer.*\(got 'two'\)"):
        parse_config({"training": {"algorithm": "apo", "beam_width": "two"}})
    with pytest.raises(ConfigError, match="apo.val_batch_size: Input should be a valid integer"):
        parse_config({"training": {"algorithm": "apo"}, "apo": {"val_batch_size": "many"}})
    with pytest.raises(ConfigError, match="no starting prompt"):
        build_apo(parse_config({"agent": {"name": "a", "optimize": ["b"]}, "training": {"algorithm": "apo"}, "apo": {"prompts": {"a": "x"}}}))


def test_an_apo_section_is_accepted_but_ignored_by_other_algorithms():
    config = parse_config({"training": {"algorithm": "grpo", "group_size": 4}, "apo": {"beam_width": 2}})
    assert config.training.group_size == 4 and not hasattr(config.training, "beam_width")  # type: ignore[attr-defined]


def test_resume_flag_reads_the_run_id_from_the_output_dir(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"run_id": "run-earlier"}))
    config = load_config(EXAMPLE_DIR / "config.yaml")
    config.training.output_dir = str(tmp_path)
    assert build_apo(config, resume=True).config.run_id == "run-earlier"
    assert build_apo(config).config.run_id is None
    config.training.output_dir = str(tmp_path / "empty")
    with pytest.raises(ConfigError, match="--resume"):
        build_apo(config, resume=True)
