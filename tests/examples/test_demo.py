"""The README's main job, end to end: the contract lines, the run folder and the promised gains."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")


def test_demo_improves_held_out_accuracy(tmp_path: Path) -> None:
    env = {**os.environ, "AGL_HOME": str(tmp_path / "home")}
    result = subprocess.run(
        [sys.executable, "-m", "examples.demo"], env=env, capture_output=True, text=True, timeout=600,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    lines = result.stdout.strip().splitlines()
    pattern = r"held-out accuracy \((sampled|greedy)\): ([\d.]+) -> ([\d.]+) \(\+?(-?[\d.]+)\)"
    gains = {}
    for line in lines[-2:]:
        match = re.fullmatch(pattern, line)
        assert match, line
        mode, before, after, gain = match.groups()
        assert abs(float(after) - float(before) - float(gain)) < 2e-3
        gains[mode] = float(gain)
    assert list(gains) == ["sampled", "greedy"]
    assert gains["sampled"] >= 0.30 and gains["greedy"] >= 0.10, gains

    run = tmp_path / "home" / "runs" / "demo"
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(1, len(metrics) + 1))
    assert all({"reward_mean", "loss"} <= m.keys() for m in metrics)
    assert "heldout_reward" in metrics[-1]
    heldout = json.loads((run / "heldout.json").read_text())
    assert heldout["after"]["heldout_accuracy_greedy"] - heldout["before"]["heldout_accuracy_greedy"] == pytest.approx(gains["greedy"], abs=2e-3)
    assert (tmp_path / "home" / "store.db").is_file()
    # every rollout of every step was trained on, and no LLM call failed on the way
    assert all(m["dropped_rollouts"] == 0 for m in metrics), [m["dropped_rollouts"] for m in metrics]
    assert "ERROR" not in (run / "training.log").read_text()
