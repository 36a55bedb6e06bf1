"""LoRA (peft): a fresh adapter on a model, a saved adapter to continue training, an adapter merged for serving."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def is_adapter(path: str | Path) -> bool:
    """Whether `path` holds a LoRA adapter (rather than full weights)."""
    return (Path(path) / "adapter_config.json").exists()


def add_adapter(model: Any, rank: int) -> Any:
    """`model` with a fresh trainable adapter of `rank` on every linear layer (alpha = 2 * rank)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear", task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def load_adapter(model: Any, path: str | Path) -> Any:
    """`model` with the saved adapter at `path`, trainable (to continue a run)."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(path), is_trainable=True)


def load_merged(path: str | Path) -> tuple[Any, Any]:
    """The adapter at `path` merged into its base model, in eval mode, and its tokenizer."""
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    model = AutoPeftModelForCausalLM.from_pretrained(str(path)).merge_and_unload()
    return model.eval(), AutoTokenizer.from_pretrained(str(path))
