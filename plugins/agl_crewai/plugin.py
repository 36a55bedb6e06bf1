"""Pluggy hooks of the CrewAI plugin: they drive `CrewAIInstrumentor`."""

from agl_core.plugins.framework import FrameworkPlugin
from agl_crewai.package import _instruments

_plugin = FrameworkPlugin(
    "crewai",
    instruments=_instruments,
    extra="crewai",
    instrumentor="agl_crewai.instrumentor:CrewAIInstrumentor",
)
agl_framework_info = _plugin.agl_framework_info
agl_instrument = _plugin.agl_instrument
agl_uninstrument = _plugin.agl_uninstrument
