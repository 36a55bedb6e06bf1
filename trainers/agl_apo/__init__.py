"""Automatic prompt optimization: textual gradients and beam search over per-agent prompt templates."""

from agl_apo.algorithm import APO
from agl_apo.config import APOConfig
from agl_apo.llm import LLMError, TextLLM

__all__ = ["APO", "APOConfig", "LLMError", "TextLLM"]
