"""Pluggy hooks of the openai plugin: they drive `OpenAIInstrumentor`."""

from agl_core.plugins.framework import FrameworkPlugin

_plugin = FrameworkPlugin(
    "openai",
    package="openai",
    versions=">=2.45,<3",
    extra="openai",
    instrumentor="agl_openai.instrumentor:OpenAIInstrumentor",
)
agl_framework_info = _plugin.agl_framework_info
agl_instrument = _plugin.agl_instrument
agl_uninstrument = _plugin.agl_uninstrument
