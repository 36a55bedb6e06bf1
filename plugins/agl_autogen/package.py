"""The versions of AutoGen agentchat this plugin supports, written once: the instrumentor's
``instrumentation_dependencies()`` and the plugin's framework info both read them."""

_instruments = ("autogen-agentchat >= 0.7, < 0.8",)
