"""The versions of openai this plugin supports, written once: the instrumentor's
``instrumentation_dependencies()`` and the plugin's framework info both read them."""

_instruments = ("openai >= 2.45, < 3",)
