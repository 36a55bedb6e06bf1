"""Agent Lightning core: spans, store, tracer, runner, adapters, config, CLI.

Imports only the standard library, OpenTelemetry, pydantic, pluggy, SQLAlchemy and web server
libraries: never a framework, never torch.
"""

__version__ = "0.1.0"
