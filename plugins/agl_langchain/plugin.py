"""Pluggy hooks of the LangChain/LangGraph plugin: they drive `LangChainInstrumentor`."""

from agl_core.plugins.framework import FrameworkPlugin
from agl_langchain.package import _instruments

_plugin = FrameworkPlugin(
    "langchain",
    instruments=_instruments,
    extra="langchain",
    instrumentor="agl_langchain.instrumentor:LangChainInstrumentor",
    module="langchain_core",
)
agl_framework_info = _plugin.agl_framework_info
agl_instrument = _plugin.agl_instrument
agl_uninstrument = _plugin.agl_uninstrument
