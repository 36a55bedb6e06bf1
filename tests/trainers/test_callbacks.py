"""The run reporting the RL and SFT loops share: every step's metrics reach the store, metrics.jsonl
and training.log, and the log file lets go of the logger however the run ends."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from agl_core.store import LightningStore
from agl_trl.callbacks import TrainerState, default_callbacks


def test_each_step_reaches_the_store_the_metrics_file_and_the_training_log(tmp_path: Path) -> None:
    store = LightningStore("memory://")
    state = TrainerState("run-1", tmp_path, total_steps=2, unit="round")
    callbacks = default_callbacks(store, save_total_limit=None)
    with callbacks.training(state):
        for step in (1, 2):
            state.step = step
            callbacks.on_log(state, {"step": step, "loss": step / 10})
            callbacks.on_step_end(state)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines == [{"step": 1, "loss": 0.1}, {"step": 2, "loss": 0.2}]
    assert [(m.step, m.metrics["loss"]) for m in store.query_metrics("run-1")] == [(1, 0.1), (2, 0.2)]
    assert "round 2/2 loss=0.2" in (tmp_path / "training.log").read_text()


def test_a_failed_run_still_closes_its_training_log(tmp_path: Path) -> None:
    logger = logging.getLogger("agentlightning")
    handlers = list(logger.handlers)
    callbacks = default_callbacks(LightningStore("memory://"), save_total_limit=1)
    with pytest.raises(RuntimeError, match="step failed"):
        with callbacks.training(TrainerState("run-2", tmp_path, total_steps=3)):
            logger.warning("about to fail")
            raise RuntimeError("step failed")
    assert logger.handlers == handlers
    logger.warning("after the run")
    assert "about to fail" in (tmp_path / "training.log").read_text()
    assert "after the run" not in (tmp_path / "training.log").read_text()
