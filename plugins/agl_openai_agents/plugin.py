"""Pluggy hooks of the OpenAI Agents SDK plugin: they drive `OpenAIAgentsInstrumentor`."""

from agl_core.plugins.framework import FrameworkPlugin

_plugin = FrameworkPlugin(
    "openai_agents",
    package="openai-agents",
    versions=">=0.3,<0.21",
    extra="openai-agents",
    instrumentor="agl_openai_agents.instrumentor:OpenAIAgentsInstrumentor",
)
agl_framework_info = _plugin.agl_framework_info
agl_instrument = _plugin.agl_instrument
agl_uninstrument = _plugin.agl_uninstrument
