"""``agent-lightning export --format prompt``: the best prompt with its score, and every candidate."""

from __future__ import annotations

import json
from pathlib import Path

from agl_apo.candidates import read_history, stored_candidates, write_report
from agl_core.store.base import LightningStore
from agl_core.training.export_traces import no_checkpoint_choice
from agl_core.training.runs import run_id_of


def export_prompt(run: str, out: str, store: LightningStore, checkpoint: str = "latest") -> str:
    """`run` is an APO output directory or a run id. Candidates come from the store, else from the
    run directory's history.json (so a run directory exports without the store it was trained on)."""
    no_checkpoint_choice("prompt (it is always the best prompt)", checkpoint)
    run_dir = Path(run)
    if (run_dir / "run.json").is_file():
        run_id = str(json.loads((run_dir / "run.json").read_text())["run_id"])
        candidates = stored_candidates(store, run_id) or read_history(run_dir)
    else:
        run_id = run_id_of(run, store)
        candidates = stored_candidates(store, run_id)
    if not candidates:
        raise ValueError(f"run {run_id} has no scored prompt candidates (is it an APO run, and is --store its store?)")
    best_txt = write_report(Path(out), run_id, candidates)
    return f"wrote the best prompt of {len(candidates)} candidates to {best_txt} (JSON: best_prompt.json, history.json/.txt)"
