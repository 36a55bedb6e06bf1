"""``export --format traces-jsonl``: every rollout of a run with its triplets, one JSON per line."""

from __future__ import annotations

import json
from pathlib import Path

from agl_core.store.base import LightningStore
from agl_core.training.adapters import rollout_triplets
from agl_core.training.runs import run_id_of


def no_checkpoint_choice(fmt: str, checkpoint: str) -> None:
    """Refuse ``--checkpoint`` for a format that exports no model."""
    if checkpoint != "latest":
        raise ValueError(f"--checkpoint applies to hf and lora exports, not to {fmt}")


def export_traces_jsonl(run: str, out: str, store: LightningStore, checkpoint: str = "latest") -> str:
    no_checkpoint_choice("traces-jsonl", checkpoint)
    run_id = run_id_of(run, store)
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    target = path / "traces.jsonl"
    count = 0
    with open(target, "w") as f:
        for rollout in store.query_rollouts(run_id=run_id):
            triplets = rollout_triplets(store, rollout)
            f.write(
                json.dumps(
                    {"rollout": rollout.model_dump(mode="json"), "triplets": [t.model_dump(mode="json") for t in triplets]}
                )
                + "\n"
            )
            count += 1
    return f"wrote {count} rollouts to {target}"
