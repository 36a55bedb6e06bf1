"""``training.runners: external`` / ``fit(..., runners="external")``: the trainer starts no runner
of its own and an ``agent-lightning runner`` process on the same store executes its rollouts."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any, Sequence

from click.testing import CliRunner

from agl_core.cli.main import main
from agl_core.store.base import LightningStore
from agl_core.store.sql import SqlStore
from agl_core.training.algorithm import Algorithm, fit
from agl_core.types import Task
from tests.faults.procs import CLI
from tests.scale.test_runner_cmd import AGENT


class OneBatch(Algorithm):
    name = "one-batch"

    def run(self, store: LightningStore, train_tasks: Sequence[Task], eval_tasks: Sequence[Task]) -> dict[str, Any]:
        done = self.run_rollouts(store, train_tasks, resources_id=None, timeout=60)
        return {"ids": [r.rollout_id for r in done], "rewards": [r.final_reward for r in done]}


def never_here(task: Any, resources: Any) -> float:
    raise AssertionError("the trainer ran a rollout itself")


def test_fit_with_external_runners_leaves_the_rollouts_to_an_agent_lightning_runner(tmp_path: Path) -> None:
    (tmp_path / "scale_agent.py").write_text(AGENT)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = SqlStore(url)
    runner = subprocess.Popen(
        [CLI, "runner", "--store", url, "--agent", "scale_agent:agent", "--workers", "2"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    try:
        tasks = [Task(input={"i": i, "sleep": 0.0}) for i in range(4)]
        summary = fit(OneBatch(), never_here, store, tasks, runners="external")
    finally:
        os.kill(runner.pid, signal.SIGTERM)
        assert runner.wait(60) == 0
    assert summary["rewards"] == [1.0] * 4
    workers = {a.worker_id for rid in summary["ids"] for a in store.query_attempts(rid)}
    assert workers and all(f"-{runner.pid}-" in (w or "") for w in workers)
    store.close()


def test_external_runners_refuse_a_memory_store(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "agent: {name: a, type: openai}\nmodel: {path: tiny}\ntraining: {algorithm: grpo, runners: external}\n"
        "environment: {train_tasks: math}\n"
    )
    result = CliRunner().invoke(main, ["train", "--config", str(config), "--store", "memory://", "--dry-run"])
    assert result.exit_code == 2
    assert "error: training.runners: external runners cannot reach a memory:// store" in result.output
