"""OpenTelemetry instrumentor for LangChain/LangGraph (entry point ``agl_langchain``).

It uses LangChain's own extension point: a configure hook (``register_configure_hook``) whose
context variable defaults to our handler, so every callback manager LangChain configures, in any
thread, gets it as an inheritable handler. Uninstrumenting removes the hook again.
"""

from __future__ import annotations

import contextvars
from typing import Any, Collection

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from agl_langchain.package import _instruments


class LangChainInstrumentor(BaseInstrumentor):
    """Adds :class:`agl_langchain.callbacks.AglCallbackHandler` to every LangChain callback manager."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        from langchain_core.tracers.context import register_configure_hook

        from agl_langchain.callbacks import AglCallbackHandler

        tracer = trace.get_tracer("agl_langchain", tracer_provider=kwargs.get("tracer_provider"))
        self.handler = AglCallbackHandler(tracer)
        self._var: contextvars.ContextVar[Any] | None = contextvars.ContextVar("agl_langchain_handler", default=self.handler)
        register_configure_hook(self._var, True)

    def _uninstrument(self, **kwargs: Any) -> None:
        from langchain_core.tracers import context as lc_context

        var = getattr(self, "_var", None)
        # The hook list has no public remover; drop our entry by identity.
        lc_context._configure_hooks[:] = [hook for hook in lc_context._configure_hooks if hook[0] is not var]
        self._var = None
