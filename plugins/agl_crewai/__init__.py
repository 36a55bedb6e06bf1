"""Agent Lightning plugin for CrewAI (see `agl_crewai.instrumentor`)."""
