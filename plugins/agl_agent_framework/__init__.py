"""Agent Lightning plugin for Microsoft Agent Framework (see `agl_agent_framework.instrumentor`)."""
