"""``agent-lightning export --format hf|lora``: a run's latest checkpoint as a model or an adapter.

`run` is a run folder (the trainer's ``output_dir``) or a run id the store knows. ``hf`` writes a
standalone Hugging Face model folder (a LoRA run's adapter merged into its base); ``lora`` writes
the adapter alone and refuses runs that trained all weights.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from agl_core.store.base import LightningStore

from .checkpoints import STATE_FILE, is_lora, latest_checkpoint


def run_checkpoint(run: str, store: LightningStore) -> Path:
    folder = Path(run)
    if not folder.is_dir():
        found = store.get_run(run)
        if found is None or not found.output_dir:
            raise FileNotFoundError(f"no run folder {run!r} and no run with that id in {store.url}")
        folder = Path(found.output_dir)
    checkpoint = latest_checkpoint(folder)
    if checkpoint is None:
        raise FileNotFoundError(f"{folder} has no checkpoints (expected {folder}/checkpoints/step-N)")
    return checkpoint


def _copy_model_files(source: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_file() and item.name != STATE_FILE:
            shutil.copy2(item, out / item.name)


def export_hf(run: str, out: str, store: LightningStore) -> str:
    checkpoint = run_checkpoint(run, store)
    target = Path(out)
    if is_lora(checkpoint):
        from .policy import load_checkpoint_model

        model, tokenizer = load_checkpoint_model(checkpoint)  # adapter merged into its base
        model.save_pretrained(target)
        tokenizer.save_pretrained(target)
    else:
        _copy_model_files(checkpoint, target)
    return f"exported {checkpoint} as a Hugging Face model to {target}"


def export_lora(run: str, out: str, store: LightningStore) -> str:
    checkpoint = run_checkpoint(run, store)
    if not is_lora(checkpoint):
        raise ValueError(f"{checkpoint} holds full weights, not a LoRA adapter (train with lora: true, or export --format hf)")
    _copy_model_files(checkpoint, Path(out))
    return f"exported the LoRA adapter of {checkpoint} to {out}"
