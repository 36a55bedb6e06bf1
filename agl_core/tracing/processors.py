"""A base for the span processors plugins add to tag a framework's native OpenTelemetry spans."""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

log = logging.getLogger("agentlightning")


class TaggingSpanProcessor(SpanProcessor):
    """Calls ``_tag(span, parent_context)`` on start of every span of instrumentation scope
    ``scope`` while ``enabled``; subclasses set ``scope`` and ``plugin`` (for log lines) and
    implement ``_tag``.

    The SDK calls processors inline, so whatever ``_tag`` raises is logged at debug level, never
    raised into the agent's code. SDK providers cannot drop a processor, so uninstrumenting
    switches it off (``enabled = False``) instead.
    """

    scope: str = ""
    plugin: str = ""

    def __init__(self) -> None:
        self.enabled = False
        self._provider_ids: set[int] = set()

    def attach(self, provider: Any) -> None:
        """Equip the SDK provider the spans go to (``agl.instrument()`` configured it; under
        ``opentelemetry-instrument`` it is the distro's) with this processor, once, and enable it."""
        if not hasattr(provider, "add_span_processor"):
            log.debug("%s: no SDK TracerProvider; spans are left as they are", self.plugin)
        elif id(provider) not in self._provider_ids:
            provider.add_span_processor(self)
            self._provider_ids.add(id(provider))
        self.enabled = True

    def on_start(self, span: Any, parent_context: otel_context.Context | None = None) -> None:
        try:
            scope = span.instrumentation_scope
            if self.enabled and scope is not None and scope.name == self.scope:
                self._tag(span, parent_context)
        except Exception:
            log.debug("could not tag span %s", getattr(span, "name", "?"), exc_info=True)

    def _tag(self, span: Any, parent_context: otel_context.Context | None) -> None:
        raise NotImplementedError

    def on_end(self, span: ReadableSpan) -> None:
        pass
