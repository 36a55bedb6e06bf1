"""A store token never reaches a training run's logs: ``agent-lightning train`` against a
token-protected store server, with the right token and with a wrong one (the error line names the
server, not the token)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agl_core.server import BackgroundCollector
from agl_core.store import LightningStore

TOKEN = "tok-3f9a1c-never-logged"


def _train(tmp_path: Path, url: str, token: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    from tests.trainers.rl_fixtures import save_policy

    policy = save_policy(tmp_path / "policy")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"agent: {{name: tok, type: openai}}\nmodel: {{path: {policy}}}\nenvironment: {{train_tasks: math, eval_size: 2}}\n"
        "training: {algorithm: grpo, episodes: 1, batch_size: 2, group_size: 2, max_new_tokens: 8}\n"
    )
    home = tmp_path / "home"
    env = {**os.environ, "AGL_HOME": str(home), "AGL_STORE_TOKEN": token}
    args = [sys.executable, "-m", "agl_core.cli.main", "train", "--config", str(config), "--store", url, "-v"]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path), home


def _logged(home: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in home.rglob("*.log"))


def test_a_training_run_never_logs_the_store_token(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    store = LightningStore("memory://")
    with BackgroundCollector(store, token=TOKEN) as server:
        result, home = _train(tmp_path / "right", server.url, TOKEN)
        assert result.returncode == 0, result.stderr[-3000:]
        assert store.query_rollouts()  # the run really went through the protected server
        wrong, wrong_home = _train(tmp_path / "wrong", server.url, TOKEN[::-1])
    assert wrong.returncode != 0 and "401" in wrong.stderr
    logs = [result.stdout, result.stderr, _logged(home), wrong.stdout, wrong.stderr, _logged(wrong_home)]
    assert "training.log" in " ".join(str(p) for p in home.rglob("*.log"))
    for text in logs:
        assert TOKEN not in text and TOKEN[::-1] not in text
    store.close()
