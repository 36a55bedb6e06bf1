"""Pluggy hooks of the AutoGen plugin: they drive `AutoGenInstrumentor`."""

from agl_autogen.package import _instruments
from agl_core.plugins.framework import FrameworkPlugin

_plugin = FrameworkPlugin(
    "autogen",
    instruments=_instruments,
    extra="autogen",
    instrumentor="agl_autogen.instrumentor:AutoGenInstrumentor",
    module="autogen_agentchat",
)
agl_framework_info = _plugin.agl_framework_info
agl_instrument = _plugin.agl_instrument
agl_uninstrument = _plugin.agl_uninstrument
