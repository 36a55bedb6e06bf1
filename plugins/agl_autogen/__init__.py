"""Agent Lightning plugin for AutoGen agentchat 0.7 (see `agl_autogen.instrumentor`)."""
