"""The versions of Microsoft Agent Framework this plugin supports, written once: the instrumentor's
``instrumentation_dependencies()`` and the plugin's framework info both read them."""

_instruments = ("agent-framework-core >= 1.20, < 2",)
