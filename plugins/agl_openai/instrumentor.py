"""OpenTelemetry instrumentor for the ``openai`` client (``opentelemetry_instrumentor`` entry point
``agl_openai``).

Spans go to the global TracerProvider (or the ``tracer_provider`` passed to ``instrument``):
``agl.instrument()`` has configured it to write into the LightningStore, while under
``opentelemetry-instrument`` it is the distro's provider exporting over OTLP.
"""

from __future__ import annotations

import logging
from typing import Any, Collection

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.instrumentation.utils import unwrap

from agl_openai.package import _instruments

log = logging.getLogger("agentlightning")

# (module, class.method, api, is_async)
_TARGETS = (
    ("openai.resources.chat.completions.completions", "Completions.create", "chat", False),
    ("openai.resources.chat.completions.completions", "Completions.parse", "chat", False),
    ("openai.resources.chat.completions.completions", "AsyncCompletions.create", "chat", True),
    ("openai.resources.chat.completions.completions", "AsyncCompletions.parse", "chat", True),
    ("openai.resources.responses.responses", "Responses.create", "responses", False),
    ("openai.resources.responses.responses", "Responses.parse", "responses", False),
    ("openai.resources.responses.responses", "AsyncResponses.create", "responses", True),
    ("openai.resources.responses.responses", "AsyncResponses.parse", "responses", True),
)


class OpenAIInstrumentor(BaseInstrumentor):
    """Records one ``chat {model}`` span per chat-completions / Responses request (sync, async,
    streaming, structured output) and propagates the trace context in the request headers."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        import wrapt  # noqa: F401  (ImportError is the one error an instrumentor may raise)

        from agl_openai.wrappers import (
            CHAT,
            RESPONSES,
            SWITCH,
            async_wrapper,
            sync_wrapper,
        )

        tracer = trace.get_tracer("agl_openai", tracer_provider=kwargs.get("tracer_provider"))
        apis = {"chat": CHAT, "responses": RESPONSES}
        self._wrapped: list[tuple[str, str]] = []
        for module, attr, api, is_async in _TARGETS:
            factory = async_wrapper if is_async else sync_wrapper
            try:
                wrapt.wrap_function_wrapper(module, attr, factory(tracer, apis[api]))
                self._wrapped.append((module, attr))
            except Exception:
                log.warning("agl_openai: could not wrap %s.%s", module, attr, exc_info=True)
        SWITCH.on = True

    def _uninstrument(self, **kwargs: Any) -> None:
        import importlib

        from agl_openai.wrappers import SWITCH

        SWITCH.on = False
        for module, attr in getattr(self, "_wrapped", []):
            cls_name, method = attr.split(".")
            try:
                unwrap(getattr(importlib.import_module(module), cls_name), method)
            except Exception:
                log.warning("agl_openai: could not unwrap %s.%s", module, attr, exc_info=True)
        self._wrapped = []
