"""Automatic prompt optimization: textual gradients and beam search over per-agent prompt templates.

``import agl_apo`` stays light (the plugin registers without the openai client installed): the
names below load on first attribute access.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["APO", "APOConfig", "EndpointError", "LLMError", "TextLLM"]

_WHERE = {"APO": "agl_apo.algorithm", "APOConfig": "agl_apo.config", "EndpointError": "agl_apo.llm", "LLMError": "agl_apo.llm", "TextLLM": "agl_apo.llm"}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'agl_apo' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
