"""Reading runs back from ``AGL_STORAGE=s3://…`` (a real moto server on 127.0.0.1): on a machine
whose ``AGL_HOME`` is empty, ``export --run`` and ``eval --checkpoint`` fetch a run that is only in
the bucket and use it, the dashboard lists it with its metrics; a pruned checkpoint leaves the
bucket too; an SFT run through the CLI mirrors and resumes like a GRPO one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from starlette.testclient import TestClient

pytest.importorskip("s3fs", reason="needs agentlightning[s3] (s3fs)")
pytest.importorskip("moto.server", reason="needs moto[server]")

from agl_core.cli.main import main  # noqa: E402
from agl_core.dashboard import create_dashboard_app  # noqa: E402
from agl_core.store import LightningStore  # noqa: E402
from agl_core.training.run_mirror import RunMirror  # noqa: E402
from tests.trainers.moto_s3 import aws_env  # noqa: E402
from tests.trainers.rl_fixtures import CALC, HI  # noqa: E402
from tests.trainers.test_resume import weights  # noqa: E402
from tests.trainers.test_s3_storage import train  # noqa: E402


def keys(s3, prefix: str) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket="runs-bucket", Prefix=prefix).get("Contents", [])}


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def write_tasks(folder: Path) -> Path:
    path = folder / "tasks.jsonl"
    path.write_text("\n".join(json.dumps({**t, "id": f"t{i}"}) for i, t in enumerate([HI, CALC])) + "\n")
    return path


def test_a_run_only_in_the_bucket_is_exported_evaluated_and_listed(policy, tmp_path, s3, monkeypatch):
    monkeypatch.setenv("AGL_STORAGE", "s3://runs-bucket/read")
    train(policy, tmp_path / "trained", episodes=2, resume=False, monkeypatch=monkeypatch)
    folder = tmp_path / "trained" / "runs" / "agent-grpo"
    run_id, trained = json.loads((folder / "run.json").read_text())["run_id"], weights(folder / "checkpoints" / "step-2")
    shutil.rmtree(tmp_path / "trained")

    monkeypatch.setenv("AGL_HOME", str(tmp_path / "by-name"))  # a fresh machine: only the bucket knows the run
    exported = cli("export", "--run", "agent-grpo", "--format", "hf", "--out", str(tmp_path / "hf"))
    assert exported.exit_code == 0, exported.output
    assert all(torch.equal(trained[n], t) for n, t in weights(tmp_path / "hf").items())
    fetched = tmp_path / "by-name" / "runs" / "agent-grpo"
    assert sorted(p.name for p in (fetched / "checkpoints").iterdir()) == ["step-1", "step-2"]  # committed ones, whole
    assert sorted(p.name for p in fetched.parent.iterdir()) == ["agent-grpo"]  # no staging folder left behind
    traces = cli("export", "--run", "agent-grpo", "--format", "traces-jsonl", "--out", str(tmp_path / "traces"),
                 "--store", f"sqlite:///{fetched / 'store.db'}")  # the store's snapshot at the latest checkpoint
    assert traces.exit_code == 0 and "wrote 16 rollouts" in traces.output, traces.output  # 2 steps of 2 tasks x 4

    monkeypatch.setenv("AGL_HOME", str(tmp_path / "by-id"))
    (tmp_path / "config.yaml").write_text(json.dumps({
        "agent": {"name": "calc", "type": "openai", "system_prompt": "Use tools."}, "model": {"path": str(policy)},
        "training": {"algorithm": "grpo", "max_new_tokens": 8}, "environment": {"eval_tasks": str(write_tasks(tmp_path))},
    }))  # fmt: skip
    evaluated = cli("eval", "--config", str(tmp_path / "config.yaml"), "--checkpoint", run_id)
    assert evaluated.exit_code == 0, evaluated.output
    assert f"scored: checkpoint {tmp_path / 'by-id' / 'runs' / 'agent-grpo'}" in evaluated.output

    monkeypatch.setenv("AGL_HOME", str(tmp_path / "dashboard"))
    client = TestClient(create_dashboard_app(LightningStore(f"sqlite:///{tmp_path / 'dashboard.db'}")))
    (listed,) = client.get("/api/runs").json()["items"]
    assert listed["run_id"] == run_id and listed["steps"] == 2 and listed["output_dir"] == "s3://runs-bucket/read/runs/agent-grpo"
    series = client.get(f"/api/runs/{run_id}/metrics").json()["series"]
    assert [step for step, _ in series["reward_mean"]] == [1, 2]
    assert client.get("/api/runs/agent-grpo").json()["run_id"] == run_id  # by folder name too
    assert client.get("/api/summary").json()["runs"] == 1
    assert not list((tmp_path / "dashboard").glob("runs/*"))  # read in place, never downloaded

    missing = cli("export", "--run", "nope", "--format", "hf", "--out", str(tmp_path / "x"))
    assert missing.exit_code == 2 and "not a run in AGL_STORAGE=s3://runs-bucket/read" in missing.output


def test_a_pruned_checkpoint_leaves_the_bucket_too(policy, tmp_path, s3, monkeypatch):
    monkeypatch.setenv("AGL_STORAGE", "s3://runs-bucket/pruned")
    train(policy, tmp_path / "home", episodes=3, resume=False, monkeypatch=monkeypatch, save_total_limit=1)
    local = tmp_path / "home" / "runs" / "agent-grpo" / "checkpoints"
    assert sorted(p.name for p in local.iterdir()) == ["step-3"]
    assert RunMirror("s3://runs-bucket/pruned").committed_steps(Path("agent-grpo")) == [3]
    remaining = keys(s3, "pruned/runs/agent-grpo/checkpoints/")
    assert remaining and all(k.startswith("pruned/runs/agent-grpo/checkpoints/step-3") for k in remaining)


def test_an_sft_run_through_the_cli_mirrors_and_resumes_from_the_bucket(policy, tmp_path, s3, moto_url):
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({
        "agent": {"name": "calc", "type": "openai", "system_prompt": "Use tools."}, "model": {"path": str(policy)},
        "training": {"algorithm": "sft", "samples_per_task": 2, "max_new_tokens": 8, "batch_size": 4, "learning_rate": 1e-2,
                     "reward_threshold": 0.0, "n_workers": 1},
        "environment": {"train_tasks": str(write_tasks(tmp_path))},
    }))  # fmt: skip

    def train_cli(home: str, episodes: int, *flags: str) -> None:
        env = {**os.environ, **aws_env(moto_url), "AGL_HOME": str(tmp_path / home), "AGL_STORAGE": "s3://runs-bucket/sft"}
        command = [sys.executable, "-m", "agl_core.cli.main", "train", "--config", str(config), "--set", f"training.episodes={episodes}"]
        result = subprocess.run([*command, *flags], env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]

    train_cli("first", 1)
    prefix = "sft/runs/calc-sft/"
    assert {f"{prefix}run.json", f"{prefix}metrics.jsonl", f"{prefix}checkpoints/step-1.done"} <= keys(s3, prefix)
    run_id = json.loads((tmp_path / "first" / "runs" / "calc-sft" / "run.json").read_text())["run_id"]
    shutil.rmtree(tmp_path / "first")

    train_cli("second", 2, "--resume")
    folder = tmp_path / "second" / "runs" / "calc-sft"
    assert json.loads((folder / "run.json").read_text())["run_id"] == run_id  # the same run, continued
    assert [json.loads(line)["step"] for line in (folder / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert RunMirror("s3://runs-bucket/sft").committed_steps(Path("calc-sft")) == [1, 2]


def test_a_fresh_run_in_a_used_folder_moves_the_earlier_run_aside_in_the_bucket(policy, tmp_path, s3, monkeypatch):
    """As the trainer moves an earlier run's files to ``<folder>@<its id>`` locally, so in the bucket:
    two runs' checkpoints never mix under one key (a resume would take the other run's latest)."""
    monkeypatch.setenv("AGL_STORAGE", "s3://runs-bucket/again")
    first = train(policy, tmp_path / "home", episodes=2, resume=False, monkeypatch=monkeypatch)["run_id"]
    second = train(policy, tmp_path / "home", episodes=1, resume=False, monkeypatch=monkeypatch)["run_id"]
    mirror = RunMirror("s3://runs-bucket/again")
    assert mirror.committed_steps(Path("agent-grpo")) == [1] and mirror.committed_steps(Path(f"agent-grpo@{first}")) == [1, 2]
    assert json.loads(mirror.read_text("agent-grpo", "run.json") or "{}")["run_id"] == second
    assert json.loads(mirror.read_text(f"agent-grpo@{first}", "run.json") or "{}")["run_id"] == first
