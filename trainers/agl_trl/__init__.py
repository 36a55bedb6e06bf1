"""Agent Lightning trainers on torch/transformers/TRL: GRPO, RLOO, SFT and the tiny demo model.

``import agl_trl`` stays light: the trainer classes and configs load on first attribute access.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["GRPOTrainer", "RLOOTrainer", "SFTTrainer", "RLConfig", "SFTConfig"]

_WHERE = {
    "GRPOTrainer": "agl_trl.trainers",
    "RLOOTrainer": "agl_trl.trainers",
    "SFTTrainer": "agl_trl.trainers",
    "RLConfig": "agl_trl.config",
    "SFTConfig": "agl_trl.sft",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'agl_trl' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
