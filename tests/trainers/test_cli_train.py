"""``agent-lightning train/eval/export`` with GRPO on a tiny local policy, ``--dry-run`` on good and
bad configs, and the README's own config.yaml validated as written."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from transformers import AutoModelForCausalLM

from agl_core.cli.main import main
from agl_core.store import LightningStore
from tests.trainers.rl_fixtures import CALC, HI

README = Path(__file__).resolve().parents[2] / "README.md"
REQUIRED = {"step", "reward_mean", "reward_std", "loss", "kl", "clip_fraction", "tokens_per_s", "zero_variance_groups", "heldout_reward"}


@pytest.fixture()
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("AGL_HOME", str(tmp_path / "home"))
    return tmp_path


def write_config(folder: Path, policy: Path, **training) -> Path:
    (folder / "tasks.jsonl").write_text("\n".join(json.dumps({**t, "id": f"t{i}"}) for i, t in enumerate([HI, CALC])) + "\n")
    config = {
        "agent": {"name": "calc", "type": "openai", "system_prompt": "Use tools."},
        "model": {"path": str(policy)},
        "training": {"algorithm": "grpo", "episodes": 2, "batch_size": 2, "group_size": 2, "max_new_tokens": 8,
                     "output_dir": "run", "eval_every": 1, "checkpoint_every": 1, **training},
        "environment": {"train_tasks": "tasks.jsonl", "eval_tasks": "tasks.jsonl"},
    }  # fmt: skip
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_train_eval_export_through_the_cli(policy, home):
    config = write_config(home, policy)
    store = f"sqlite:///{home / 'store.db'}"
    result = run("train", "--config", str(config), "--store", store)
    assert result.exit_code == 0, result.output
    out = home / "run"
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [1, 2] and all(REQUIRED <= set(m) for m in lines)
    assert all(m["heldout_reward"] is not None and m["tokens_per_s"] > 0 for m in lines)
    log = (out / "training.log").read_text()
    assert "step 1/2" in log and "step 2/2" in log and "held-out before" in log
    heldout = json.loads((out / "heldout.json").read_text())
    assert set(heldout) == {"before", "after"} and "heldout_accuracy_greedy" in heldout["after"]
    run_id = json.loads((out / "run.json").read_text())["run_id"]
    assert [m.step for m in LightningStore(store).query_metrics(run_id)] == [0, 1, 2]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-1", "step-2"]

    evaluated = run("eval", "--config", str(config), "--store", store, "--checkpoint", str(out / "checkpoints" / "step-2"))
    assert evaluated.exit_code == 0, evaluated.output
    assert re.search(r"tasks\.jsonl\s*│\s*2\s*│", evaluated.output)
    assert f"scored: checkpoint {out / 'checkpoints' / 'step-2'}" in evaluated.output  # says which model it scored

    exported = run("export", "--run", str(out), "--format", "hf", "--out", str(home / "hf"), "--store", store)
    assert exported.exit_code == 0, exported.output
    model = AutoModelForCausalLM.from_pretrained(home / "hf")
    trained = AutoModelForCausalLM.from_pretrained(out / "checkpoints" / "step-2")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), trained.state_dict().values()))
    refused = CliRunner().invoke(main, ["export", "--run", str(out), "--format", "lora", "--out", str(home / "lora"), "--store", store])
    assert refused.exit_code != 0 and "not a LoRA adapter" in refused.output

    def export_hf(checkpoint: str) -> tuple[list[torch.Tensor], str]:
        target = home / f"hf-{checkpoint}"
        result = run("export", "--run", str(out), "--format", "hf", "--checkpoint", checkpoint, "--out", str(target), "--store", store)
        assert result.exit_code == 0, result.output
        return list(AutoModelForCausalLM.from_pretrained(target).state_dict().values()), result.output

    def weights_of(step: int) -> list[torch.Tensor]:
        return list(AutoModelForCausalLM.from_pretrained(out / "checkpoints" / f"step-{step}").state_dict().values())

    best = max(lines, key=lambda m: (m["heldout_reward"], -m["step"]))["step"]  # the earlier step on a tie
    for checkpoint, step in (("best", best), ("1", 1)):
        weights, said = export_hf(checkpoint)
        assert f"step-{step} as a Hugging Face model" in said
        assert all(torch.equal(a, b) for a, b in zip(weights, weights_of(step)))
    missing = CliRunner().invoke(main, ["export", "--run", str(out), "--format", "hf", "--checkpoint", "7", "--out", str(home / "x")])
    assert missing.exit_code != 0 and "has no checkpoint 7" in missing.output and "found: step-1, step-2" in missing.output
    unknown = CliRunner().invoke(main, ["export", "--run", str(out), "--format", "hf", "--checkpoint", "first", "--out", str(home / "x")])
    assert unknown.exit_code != 0 and "latest, best or a step number" in unknown.output
    traces = CliRunner().invoke(main, ["export", "--run", str(out), "--format", "traces-jsonl", "--checkpoint", "best", "--out", str(home / "t"), "--store", store])
    assert traces.exit_code != 0 and "--checkpoint applies to hf and lora" in traces.output


def test_dry_run_validates_without_training(policy, home):
    config = write_config(home, policy)
    result = run("train", "--config", str(config), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "2 train, 2 eval" in result.output and "nothing was trained" in result.output
    assert not (home / "run").exists()

    bad = write_config(home, policy, group_sise=4, learning_rate=1e-3)
    refused = CliRunner().invoke(main, ["train", "--config", str(bad), "--dry-run"])
    assert refused.exit_code != 0 and "training.group_sise: unknown key; known: " in refused.output and "group_size" in refused.output
    invalid = write_config(home, policy, group_size=1)
    refused = CliRunner().invoke(main, ["train", "--config", str(invalid), "--dry-run"])
    assert refused.exit_code != 0 and "group_size must be at least 2" in refused.output


def test_the_registered_schemas_hold_the_trainers_config_fields():
    from agl_trl.config import RLConfig
    from agl_trl.plugin import RLOptions, SFTOptions
    from agl_trl.sft import SFTConfig

    for schema, cls in ((RLOptions, RLConfig), (SFTOptions, SFTConfig)):  # model and optimize come from model:/agent:
        assert set(schema.model_fields) - {"n_workers", "runners"} == {f.name for f in dataclasses.fields(cls)} - {"model", "optimize"}


def test_readme_config_dry_runs_as_written(home):
    block = re.search(r"```yaml\n(# config\.yaml\n.*?)```", README.read_text(), re.S)
    assert block is not None
    (home / "config.yaml").write_text(block.group(1))
    result = run("train", "--config", str(home / "config.yaml"), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "math-agent (openai)" in result.output and "256 train, 256 eval" in result.output
