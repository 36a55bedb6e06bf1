"""Agent Lightning plugin for LangChain and LangGraph (a callback handler on every callback manager)."""

from agl_langchain.instrumentor import LangChainInstrumentor

__all__ = ["LangChainInstrumentor"]
