"""A trainer stand-in that writes real checkpoints until it is killed.

``python -m tests.faults.checkpoint_writer OUT MODE`` saves step 1 (prints ``saved 1``), then
``stall``: starts step 2 and stops mid-write (model written, tokenizer written, no trainer state
yet), printing ``writing 2``; ``loop``: saves steps 2, 3, … (new weights each time) as fast as it can, keeping the newest two.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import torch

from agl_trl.checkpoints import prune_checkpoints, save_checkpoint
from tests.trainers.serve_model import build

MAX_STEPS = 500  # bounded: the test kills this process long before


class StallingTokenizer:
    """Saves like the real tokenizer, then hangs: the kill lands in the middle of a checkpoint write."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def save_pretrained(self, path: Path) -> None:
        self.tokenizer.save_pretrained(path)
        print("writing 2", flush=True)
        time.sleep(120)


def main(out: str, mode: str) -> None:
    torch.set_num_threads(1)
    model, tokenizer = build(steps=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    save_checkpoint(out, 1, model, tokenizer, optimizer, extra={"run_id": "run-faults"})
    print("saved 1", flush=True)
    if mode == "stall":
        save_checkpoint(out, 2, model, StallingTokenizer(tokenizer), optimizer, extra={"run_id": "run-faults"})
        return
    for step in range(2, MAX_STEPS):
        with torch.no_grad():
            next(model.parameters()).add_(1.0)  # each step's weights differ from the last
        save_checkpoint(out, step, model, tokenizer, optimizer, extra={"run_id": "run-faults"})
        prune_checkpoints(out, keep=2)  # as SaveTotalLimit does after each save


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
