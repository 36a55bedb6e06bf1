"""The process's OpenTelemetry `TracerProvider` as Agent Lightning uses it, and our tracer.

An existing global SDK `TracerProvider` is kept and gets our processors added; only when there is
none do we install one. Every new span is stamped with the rollout it belongs to. Where finished
spans go is not this layer's business: the layer that knows the store registers a hook
(`on_provider_ready`) that adds its exporter when the provider is set up.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource as OtelResource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

from agl_core.tracing.context import current_rollout, enable_thread_propagation

TRACER_NAME = "agentlightning"

ProviderHook = Callable[[TracerProvider], None]


class RolloutStampProcessor(SpanProcessor):
    """Stamps ``agl.rollout.id`` / ``agl.attempt.id`` / ``agl.resources.id`` on every new span."""

    def on_start(self, span: Any, parent_context: otel_context.Context | None = None) -> None:
        rollout = current_rollout(parent_context)
        if rollout is not None:
            span.set_attributes(rollout.attributes())


_lock = threading.RLock()
_provider: TracerProvider | None = None
_hooks: list[ProviderHook] = []


def on_provider_ready(hook: ProviderHook) -> None:
    """Call `hook(provider)` once the provider is set up (at once if it already is)."""
    with _lock:
        _hooks.append(hook)
        if _provider is not None:
            hook(_provider)


def tracer_provider(preferred: TracerProvider | None = None) -> TracerProvider:
    """The SDK provider that carries our processors; set up on first call (idempotent).

    `preferred` is used on the first call only: else the global provider if it is an SDK one,
    else a new one that becomes the global provider.
    """
    global _provider
    with _lock:
        if _provider is None:
            provider = preferred or trace.get_tracer_provider()
            if not isinstance(provider, TracerProvider):
                provider = TracerProvider(resource=OtelResource.create({"service.name": "agentlightning"}))
                trace.set_tracer_provider(provider)
            provider.add_span_processor(RolloutStampProcessor())
            enable_thread_propagation()
            _provider = provider
            for hook in _hooks:
                hook(provider)
        return _provider


def get_tracer(name: str = TRACER_NAME) -> trace.Tracer:
    return tracer_provider().get_tracer(name)
