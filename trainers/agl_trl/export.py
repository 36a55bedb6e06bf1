"""``agent-lightning export --format hf|lora``: a run's checkpoint as a model or an adapter.

`run` is a run folder's path, its name under ``$AGL_HOME/runs`` or a run id
(`agl_core.training.runs`). ``checkpoint`` picks which: ``latest``, ``best`` (the highest held-out reward among the checkpointed steps, from
the run's ``metrics.jsonl``) or a step number. ``hf`` writes a standalone Hugging Face model folder
(a LoRA run's adapter merged into its base); ``lora`` writes the adapter alone and refuses runs that
trained all weights.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from agl_core.store.base import LightningStore
from agl_core.training.runs import run_folder

from .checkpoints import (
    STATE_FILE,
    best_checkpoint,
    checkpoint_dir,
    latest_checkpoint,
    list_checkpoints,
)
from .lora import is_adapter


def run_checkpoint(run: str, store: LightningStore, checkpoint: str = "latest") -> Path:
    folder = run_folder(run, store)
    if checkpoint == "best":
        best = best_checkpoint(folder)
        if best is None:
            raise ValueError(
                f"no checkpoint of {folder} has a held-out score: evaluation runs every eval_every steps and at the "
                "last step, checkpoints every checkpoint_every steps (give eval_tasks, make the two meet)"
            )
        return best
    if checkpoint == "latest":
        found = latest_checkpoint(folder)
    elif checkpoint.isdigit():
        found = checkpoint_dir(folder, int(checkpoint))
        found = found if (found / STATE_FILE).exists() else None
    else:
        raise ValueError(f"--checkpoint must be latest, best or a step number, not {checkpoint!r}")
    if found is None:
        have = ", ".join(p.name for p in list_checkpoints(folder)) or "none"
        raise FileNotFoundError(f"{folder} has no checkpoint {checkpoint} (expected {folder}/checkpoints/step-N; found: {have})")
    return found


def _copy_model_files(source: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_file() and item.name != STATE_FILE:
            shutil.copy2(item, out / item.name)


def export_hf(run: str, out: str, store: LightningStore, checkpoint: str = "latest") -> str:
    source = run_checkpoint(run, store, checkpoint)
    target = Path(out)
    if is_adapter(source):
        from .loading import load_checkpoint_model

        model, tokenizer = load_checkpoint_model(source)  # adapter merged into its base
        model.save_pretrained(target)
        tokenizer.save_pretrained(target)
    else:
        _copy_model_files(source, target)
    return f"exported {source} as a Hugging Face model to {target}"


def export_lora(run: str, out: str, store: LightningStore, checkpoint: str = "latest") -> str:
    source = run_checkpoint(run, store, checkpoint)
    if not is_adapter(source):
        raise ValueError(f"{source} holds full weights, not a LoRA adapter (train with lora: true, or export --format hf)")
    _copy_model_files(source, Path(out))
    return f"exported the LoRA adapter of {source} to {out}"
