"""The versions of the OpenAI Agents SDK this plugin supports, written once: the instrumentor's
``instrumentation_dependencies()`` and the plugin's framework info both read them."""

_instruments = ("openai-agents >= 0.3, < 0.21",)
