"""``export --format traces-jsonl``: every rollout of a run with its triplets, one JSON per line."""

from __future__ import annotations

import json
from pathlib import Path

from agl_core.store.base import LightningStore
from agl_core.training.adapters import rollout_triplets


def resolve_run_id(run: str, store: LightningStore) -> str:
    """A run id, or a run directory whose ``run.json`` names one."""
    meta = Path(run) / "run.json"
    if meta.is_file():
        return str(json.loads(meta.read_text())["run_id"])
    if store.get_run(run) is None:
        raise ValueError(f"no run {run!r} in {store.url} (and no run.json in such a directory)")
    return run


def no_checkpoint_choice(fmt: str, checkpoint: str) -> None:
    """Refuse ``--checkpoint`` for a format that exports no model."""
    if checkpoint != "latest":
        raise ValueError(f"--checkpoint applies to hf and lora exports, not to {fmt}")


def export_traces_jsonl(run: str, out: str, store: LightningStore, checkpoint: str = "latest") -> str:
    no_checkpoint_choice("traces-jsonl", checkpoint)
    run_id = resolve_run_id(run, store)
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
