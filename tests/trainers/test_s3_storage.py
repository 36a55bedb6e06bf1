"""``AGL_STORAGE=s3://bucket/prefix`` against a real S3-compatible server (moto) on 127.0.0.1: a run
is mirrored to the bucket, and a fresh ``AGL_HOME`` resumes from it to the same weights."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("s3fs", reason="needs agentlightning[s3] (s3fs)")
pytest.importorskip("moto.server", reason="needs moto[server]")

import agentlightning as agl  # noqa: E402
from agl_core.paths import default_store_url  # noqa: E402
from agl_core.training.algorithm import fit  # noqa: E402
from agl_core.training.run_mirror import RunMirror, StorageError  # noqa: E402
from agl_trl.rl import RLAlgorithm  # noqa: E402
from tests.trainers.rl_fixtures import rl_config  # noqa: E402
from tests.trainers.test_resume import TASKS, agent, weights  # noqa: E402


def train(policy: Path, home: Path, episodes: int, resume: bool, monkeypatch, **overrides) -> dict:
    """GRPO on `policy` into the default run folder under `home` (``agent-grpo``), checkpointing each step."""
    monkeypatch.setenv("AGL_HOME", str(home))
    store = agl.LightningStore(default_store_url())  # the embedded SQLite under this AGL_HOME
    agl.configure(store=store)
    config = rl_config(policy, Path(), episodes=episodes, checkpoint_every=1, seed=7, group_size=4, **overrides)
    config = dataclasses.replace(config, output_dir=None)
    algorithm = RLAlgorithm(config, resume=resume)
    return fit(algorithm, agent, store, TASKS, [], n_workers=1)


def test_a_fresh_home_resumes_from_the_bucket(policy, tmp_path, s3, monkeypatch):
    full = train(policy, tmp_path / "full", episodes=2, resume=False, monkeypatch=monkeypatch)
    monkeypatch.setenv("AGL_STORAGE", "s3://runs-bucket/agl")
    train(policy, tmp_path / "first", episodes=1, resume=False, monkeypatch=monkeypatch)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="runs-bucket", Prefix="agl/runs/agent-grpo/")["Contents"]}
    prefix = "agl/runs/agent-grpo/"
    assert {f"{prefix}metrics.jsonl", f"{prefix}run.json", f"{prefix}checkpoints/step-1.done"} <= keys
    assert f"{prefix}checkpoints/step-1/trainer_state.pt" in keys
    assert f"{prefix}checkpoints/step-1/store.db" in keys  # the store's snapshot at that checkpoint
    shutil.rmtree(tmp_path / "first")

    resumed = train(policy, tmp_path / "second", episodes=2, resume=True, monkeypatch=monkeypatch)
    assert Path(resumed["checkpoint"]).name == "step-2"
    a, b = weights(Path(full["checkpoint"])), weights(Path(resumed["checkpoint"]))
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)
    assert len((tmp_path / "second" / "runs" / "agent-grpo" / "metrics.jsonl").read_text().splitlines()) == 2
    assert RunMirror("s3://runs-bucket/agl").committed_steps(Path("agent-grpo")) == [1, 2]


def test_an_uncommitted_checkpoint_is_not_resumed_from(tmp_path, s3):
    s3.put_object(Bucket="runs-bucket", Key="half/runs/r/checkpoints/step-3/trainer_state.pt", Body=b"")
    mirror = RunMirror("s3://runs-bucket/half")
    assert mirror.committed_steps(Path("r")) == []
    assert mirror.restore(tmp_path / "r", None) is None and not (tmp_path / "r").exists()


def test_a_missing_bucket_is_one_clear_line(s3, monkeypatch):
    monkeypatch.setenv("AGL_STORAGE", "s3://no-such-bucket/agl")
    mirror = RunMirror.from_env()
    assert mirror is not None
    with pytest.raises(StorageError) as err:
        mirror.check()
    assert str(err.value) == "AGL_STORAGE=s3://no-such-bucket/agl: bucket 'no-such-bucket' does not exist"


def test_an_object_store_url_is_not_the_store(monkeypatch, tmp_path):
    monkeypatch.setenv("AGL_HOME", str(tmp_path))
    monkeypatch.setenv("AGL_STORAGE", "s3://bucket/prefix")
    assert default_store_url() == f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("AGL_STORAGE", "memory://")
    assert default_store_url() == "memory://"


def test_train_with_a_missing_bucket_stops_in_one_line_before_it_starts(s3, tmp_path, monkeypatch):
    import os
    import subprocess
    import sys

    config = tmp_path / "config.yaml"
    config.write_text("agent: {name: a, type: openai}\nmodel: {path: tiny}\ntraining: {algorithm: grpo}\n"
                      "environment: {train_tasks: math}\n")
    env = {**os.environ, "AGL_HOME": str(tmp_path / "home"), "AGL_STORAGE": "s3://no-such-bucket/agl"}
    result = subprocess.run([sys.executable, "-m", "agl_core.cli.main", "train", "--config", str(config)],
                            env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: AGL_STORAGE=s3://no-such-bucket/agl: bucket 'no-such-bucket' does not exist"]
