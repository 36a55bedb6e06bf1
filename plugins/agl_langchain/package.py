"""The versions of LangChain this plugin supports, written once: the instrumentor's
``instrumentation_dependencies()`` and the plugin's framework info both read them."""

_instruments = ("langchain-core >= 1.0, < 2",)
