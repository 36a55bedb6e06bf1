"""Pluggy hooks of the OpenAI Agents SDK plugin: they drive `OpenAIAgentsInstrumentor`."""

from agl_core.plugins.framework import FrameworkPlugin
from agl_openai_agents.package import _instruments

_plugin = FrameworkPlugin(
    "openai_agents",
    instruments=_instruments,
    extra="openai-agents",
    instrumentor="agl_openai_agents.instrumentor:OpenAIAgentsInstrumentor",
    module="agents",
)
agl_framework_info = _plugin.agl_framework_info
agl_instrument = _plugin.agl_instrument
agl_uninstrument = _plugin.agl_uninstrument
