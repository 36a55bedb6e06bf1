"""Agent Lightning plugin for the OpenAI Agents SDK (a trace processor, the SDK's extension point)."""

from agl_openai_agents.instrumentor import OpenAIAgentsInstrumentor

__all__ = ["OpenAIAgentsInstrumentor"]
