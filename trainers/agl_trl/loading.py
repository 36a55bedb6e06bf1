"""Loading models: a folder or hub name onto the right device and dtype."""

from __future__ import annotations

from typing import Any


def load_model(path: str, device: str | None = None) -> tuple[Any, Any]:
    """A model (on CUDA in bfloat16 when there is one, else CPU float32) and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
    return model.eval(), AutoTokenizer.from_pretrained(path)
