"""One home for runs and logs: a Python API run lands in ``$AGL_HOME/runs/<agent>-<algorithm>/``
and logs to ``$AGL_HOME/logs/training.log`` as the CLI does, prints one line per step off a terminal,
and ``export --run``, ``eval --checkpoint`` and the dashboard find it by folder name, id or path;
a fresh run in the same folder moves the earlier run's files aside."""

from __future__ import annotations

import dataclasses
import io
import json
import re

import pytest
import yaml
from click.testing import CliRunner
from rich.console import Console
from starlette.testclient import TestClient

import agentlightning as agl
from agl_core.cli import logs
from agl_core.cli.main import main
from agl_core.dashboard import create_dashboard_app
from agl_core.paths import default_run_dir
from agl_core.store import LightningStore
from agl_core.training.runs import find_run
from agl_core.types import Run
from agl_trl.callbacks import TrainerState, default_callbacks
from tests.trainers.rl_fixtures import CALC, HI, calc_agent


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_a_python_run_lives_under_agl_home_and_every_command_finds_it(policy, tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    monkeypatch.setenv("AGL_HOME", str(home))
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    config = agl.RLConfig(
        model=str(policy), episodes=2, batch_size=2, group_size=2, max_new_tokens=8, eval_every=0,
        checkpoint_every=0, rollout_timeout_s=30.0,
    )  # fmt: skip
    assert config.output_dir is None
    summary = agl.GRPOTrainer(config=config, store=LightningStore(store_url)).train(calc_agent(), [CALC, HI], [])

    folder = home / "runs" / "calc-grpo"
    assert summary["output_dir"] == str(folder) and (folder / "checkpoints" / "step-2").is_dir()
    assert summary["home_log"] == str(home / "logs" / "training.log")
    log = (home / "logs" / "training.log").read_text()
    assert re.search(r"step 1/2 reward=\S+ loss=\S+ eta=\d+s \| ", log) and "step 2/2 reward=" in log
    assert f"run {summary['run_id']} finished: folder {folder}" in log
    assert "step 2/2 reward=" in (folder / "training.log").read_text()
    err = capsys.readouterr().err  # not a terminal: the steps are plain lines, no bar
    assert [line.count("step ") for line in err.splitlines() if " step 1/2 " in line or " step 2/2 " in line] == [1, 1]

    for run in ("calc-grpo", summary["run_id"], str(folder)):
        out = tmp_path / f"hf-{len(run)}"
        exported = cli("export", "--run", run, "--format", "hf", "--out", str(out), "--store", store_url)
        assert exported.exit_code == 0 and (out / "config.json").is_file(), exported.output
    traces = cli("export", "--run", "calc-grpo", "--format", "traces-jsonl", "--out", str(tmp_path / "t"), "--store", store_url)
    assert traces.exit_code == 0 and "wrote 8 rollouts" in traces.output, traces.output
    unknown = CliRunner().invoke(main, ["export", "--run", "nope", "--format", "hf", "--out", str(tmp_path / "x")])
    assert unknown.exit_code == 2 and "no run 'nope'" in unknown.output and "(there: calc-grpo)" in unknown.output

    (tmp_path / "tasks.jsonl").write_text(json.dumps({**CALC, "id": "t0"}) + "\n")
    agent = {"name": "calc", "type": "openai", "system_prompt": "Use tools."}
    training = {"algorithm": "grpo", "max_new_tokens": 8}
    conf = {"agent": agent, "model": {"path": str(policy)}, "training": training, "environment": {"eval_tasks": "tasks.jsonl"}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(conf))
    evaluated = cli("eval", "--config", str(tmp_path / "config.yaml"), "--checkpoint", "calc-grpo", "--store", store_url)
    assert evaluated.exit_code == 0, evaluated.output

    client = TestClient(create_dashboard_app(LightningStore(store_url)))
    for run in ("calc-grpo", summary["run_id"]):
        assert client.get(f"/api/runs/{run}").json()["run_id"] == summary["run_id"]
    assert client.get("/api/runs/nope").status_code == 404

    store = LightningStore(store_url)  # a fresh run in that folder sets the earlier one aside, deleting nothing
    again = agl.GRPOTrainer(config=dataclasses.replace(config, episodes=1), store=store).train(calc_agent(), [CALC, HI], [])
    aside = home / "runs" / f"calc-grpo@{summary['run_id']}"
    assert again["output_dir"] == str(folder) and (aside / "checkpoints" / "step-2").is_dir()
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["step-1"]
    assert len((aside / "metrics.jsonl").read_text().splitlines()) == 2 and len((folder / "metrics.jsonl").read_text().splitlines()) == 1
    assert store.get_run(summary["run_id"]).output_dir == str(aside)


def test_find_run_takes_a_path_a_folder_name_or_an_id(tmp_path, monkeypatch):
    monkeypatch.setenv("AGL_HOME", str(tmp_path / "home"))
    store = LightningStore("memory://")
    folder = default_run_dir("my agent/v2", "grpo")
    assert folder == tmp_path / "home" / "runs" / "my-agent-v2-grpo"
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({"run_id": "run-1"}))
    store.upsert_run(Run(run_id="run-1", algorithm="grpo", config={}, output_dir=str(folder)))
    for given in (str(folder), folder.name, "run-1"):
        found = find_run(given, store)
        assert (found.run_id, found.folder) == ("run-1", folder)
    with pytest.raises(FileNotFoundError, match=r"not a run folder under .*runs \(there: my-agent-v2-grpo\)"):
        find_run("missing", store)
    assert find_run(str(tmp_path), store).run_id is None  # a folder without run.json: no id


def test_on_a_terminal_a_bar_shows_the_steps_with_reward_and_loss(tmp_path, monkeypatch):
    screen = io.StringIO()
    monkeypatch.setattr(logs, "console", Console(file=screen, force_terminal=True, width=120))
    state = TrainerState("run-1", tmp_path, total_steps=2)
    callbacks = default_callbacks(LightningStore("memory://"), save_total_limit=None)
    with callbacks.training(state):
        for step in (1, 2):
            state.step = step
            callbacks.on_log(state, {"step": step, "reward_mean": step / 4, "loss": 0.5})
            callbacks.on_step_end(state)
    assert re.search(r"2/2 reward=0\.5 loss=0\.5 eta", re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", screen.getvalue()))
