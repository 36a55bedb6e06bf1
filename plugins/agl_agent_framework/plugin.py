"""Pluggy hooks of the Microsoft Agent Framework plugin: they drive `AgentFrameworkInstrumentor`."""

from agl_agent_framework.package import _instruments
from agl_core.plugins.framework import FrameworkPlugin

_plugin = FrameworkPlugin(
    "agent_framework",
    instruments=_instruments,
    extra="agent-framework",
    instrumentor="agl_agent_framework.instrumentor:AgentFrameworkInstrumentor",
    module="agent_framework",
)
agl_framework_info = _plugin.agl_framework_info
agl_instrument = _plugin.agl_instrument
agl_uninstrument = _plugin.agl_uninstrument
