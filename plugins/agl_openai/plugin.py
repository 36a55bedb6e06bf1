"""Pluggy hooks of the openai plugin: they drive `OpenAIInstrumentor`."""

from agl_core.plugins.framework import FrameworkPlugin
from agl_openai.package import _instruments

_plugin = FrameworkPlugin(
    "openai",
    instruments=_instruments,
    extra="openai",
    instrumentor="agl_openai.instrumentor:OpenAIInstrumentor",
)
agl_framework_info = _plugin.agl_framework_info
agl_instrument = _plugin.agl_instrument
agl_uninstrument = _plugin.agl_uninstrument
