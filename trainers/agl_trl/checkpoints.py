"""Checkpoints: ``<output_dir>/checkpoints/step-N`` holds everything a resumed run needs.

A checkpoint folder is an ordinary Hugging Face model folder (``save_pretrained`` of the model —
or of the LoRA adapter — and of the tokenizer) plus ``trainer_state.pt``: optimizer, scheduler,
RNG states (python, numpy, torch) and the step. It is written under a temporary name and renamed,
so a crash never leaves a half-written checkpoint for ``--resume`` to pick up; pruning deletes
``trainer_state.pt`` first, so a crash mid-delete leaves no broken one listed either
(tests/faults/test_checkpoint_kill.py kills writers at arbitrary moments).
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_FILE = "trainer_state.pt"
_STEP = re.compile(r"^step-(\d+)$")


def checkpoint_dir(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / "checkpoints" / f"step-{step}"


def checkpoint_step(path: Path) -> int:
    """N of a ``step-N`` checkpoint folder."""
    return int(path.name.removeprefix("step-"))


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = Path(output_dir) / "checkpoints"
    found = [(int(m[1]), p) for p in root.glob("step-*") if (m := _STEP.match(p.name)) and (p / STATE_FILE).exists()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def best_checkpoint(output_dir: str | Path) -> Path | None:
    """The checkpoint whose step scored the highest held-out reward in the run's ``metrics.jsonl``
    (the earlier one on a tie: a later step must do better, as with TRL's best model); None when no
    checkpointed step was evaluated."""
    metrics = Path(output_dir) / "metrics.jsonl"
    lines = metrics.read_text().splitlines() if metrics.is_file() else []
    scores = {m["step"]: m["heldout_reward"] for m in map(json.loads, lines) if m.get("heldout_reward") is not None}
    scored = [(scores[checkpoint_step(p)], p) for p in list_checkpoints(output_dir) if checkpoint_step(p) in scores]
    return max(scored, key=lambda item: item[0])[1] if scored else None  # max keeps the first of equals


def prune_checkpoints(output_dir: str | Path, keep: int) -> list[Path]:
    """Delete all checkpoints but the newest `keep` and the best-scored one (TRL's
    ``save_total_limit``); returns those deleted."""
    found = list_checkpoints(output_dir)
    kept = set(found[-keep:]) | {best_checkpoint(output_dir)}
    doomed = [p for p in found if p not in kept]
    for path in doomed:
        (path / STATE_FILE).unlink()  # first: a kill mid-delete leaves a folder no one lists, not a broken checkpoint
        shutil.rmtree(path)
    return doomed


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(
    output_dir: str | Path,
    step: int,
    model: Any,
    tokenizer: Any,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write step `step`'s checkpoint; returns its folder."""
    target = checkpoint_dir(output_dir, step)
    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    state = {
        "step": step,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": rng_state(),
        **(extra or {}),
    }
    torch.save(state, staging / STATE_FILE)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def load_state(path: str | Path) -> dict[str, Any]:
    """A checkpoint's ``trainer_state.pt`` (python/numpy RNG states need full unpickling)."""
    return torch.load(Path(path) / STATE_FILE, map_location="cpu", weights_only=False)

