"""Agent Lightning plugin for the plain ``openai`` client (chat completions and Responses API)."""

from agl_openai.instrumentor import OpenAIInstrumentor

__all__ = ["OpenAIInstrumentor"]
