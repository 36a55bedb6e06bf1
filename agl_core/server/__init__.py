"""Store server and OTLP/HTTP collector (``agent-lightning collector``)."""

from agl_core.server.app import create_app, serve_collector
from agl_core.server.background import BackgroundCollector

__all__ = ["BackgroundCollector", "create_app", "serve_collector"]
