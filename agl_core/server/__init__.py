"""Store server and OTLP/HTTP collector (``agent-lightning collector``)."""

from agl_core.server.app import create_app, serve_collector

__all__ = ["create_app", "serve_collector"]
