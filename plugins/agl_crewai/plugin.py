"""Pluggy hooks of the CrewAI plugin: they drive `CrewAIInstrumentor`."""

from agl_core.plugins.framework import FrameworkPlugin

_plugin = FrameworkPlugin(
    "crewai",
    package="crewai",
    versions=">=1.0,<2",
    extra="crewai",
    instrumentor="agl_crewai.instrumentor:CrewAIInstrumentor",
)
agl_framework_info = _plugin.agl_framework_info
agl_instrument = _plugin.agl_instrument
agl_uninstrument = _plugin.agl_uninstrument
