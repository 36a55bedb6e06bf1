"""The versions of CrewAI this plugin supports, written once: the instrumentor's
``instrumentation_dependencies()`` and the plugin's framework info both read them."""

_instruments = ("crewai >= 1.0, < 2",)
