"""Loading models: a folder or hub name onto the right device and dtype, the policy a run trains
(fresh, or resumed from its latest checkpoint) and a saved checkpoint ready to serve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agl_core.cli.config import TINY_MODEL_NAMES

from .checkpoints import latest_checkpoint, load_state
from .lora import add_adapter, is_adapter, load_adapter, load_merged


def resolve_model_path(name: str) -> str:
    """``""``/``tiny`` → the tiny model (built once, cached); anything else as given."""
    if name in TINY_MODEL_NAMES:
        from .tiny_model import build_tiny_model

        return str(build_tiny_model())
    return name


def quiet_progress() -> None:
    """No transformers progress bars ("Loading weights", "Writing model shards") from here on: they
    would print on every load and checkpoint; a build says what it builds itself."""
    from transformers.utils import logging

    logging.disable_progress_bar()


def load_model(path: str, device: str | None = None) -> tuple[Any, Any]:
    """A model (on CUDA in bfloat16 when there is one, else CPU float32) and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_progress()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
    return model.eval(), AutoTokenizer.from_pretrained(path)


def load_policy(name: str, *, lora: bool = False, lora_rank: int = 16, adapter: str | None = None) -> tuple[Any, Any]:
    """The model to train and its tokenizer (which then has a pad token).

    `adapter`: a LoRA checkpoint folder to continue from; `lora` wraps a fresh adapter otherwise.
    """
    model, tokenizer = load_model(resolve_model_path(name))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if adapter is not None:
        model = load_adapter(model, adapter)
    elif lora:
        model = add_adapter(model, lora_rank)
    return model, tokenizer


def policy_to_train(cfg: Any, output_dir: Path, resume: bool) -> tuple[Any, Any, dict[str, Any] | None, Path | None]:
    """What a run trains: ``(model, tokenizer, trainer_state, checkpoint)``.

    Resuming, that is the latest checkpoint under `output_dir` (a LoRA adapter on ``cfg.model``, or
    full weights) with its saved trainer state; otherwise ``cfg.model`` (with a fresh adapter when
    ``cfg.lora``) and no state.
    """
    latest = latest_checkpoint(output_dir) if resume else None
    if latest is None:
        return *load_policy(cfg.model, lora=cfg.lora, lora_rank=cfg.lora_rank), None, None
    if is_adapter(latest):
        model, tokenizer = load_policy(cfg.model, adapter=str(latest))
    else:
        model, tokenizer = load_policy(str(latest))
    return model, tokenizer, load_state(latest), latest


def load_checkpoint_model(path: str | Path) -> tuple[Any, Any]:
    """A saved checkpoint (full weights, or a LoRA adapter merged into its base) ready to serve."""
    quiet_progress()
    return load_merged(path) if is_adapter(path) else load_model(str(path))
