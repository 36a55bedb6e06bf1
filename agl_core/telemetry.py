"""Wiring of OpenTelemetry into the store: `configure()`, the stamping processor, the exporter.

An existing global SDK `TracerProvider` is kept and gets our processors added; only when there is
none do we install one. Spans go to the store of their rollout when this process knows it (the
runner and the tracer register it), else to the configured default store.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Sequence

from opentelemetry import context as otel_context, trace
from opentelemetry.sdk.resources import Resource as OtelResource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from agl_core.context import current_rollout, enable_thread_propagation
from agl_core.spans import span_from_otel
from agl_core.store.base import LightningStore
from agl_core.types import Span

log = logging.getLogger("agentlightning")

TRACER_NAME = "agentlightning"


class RolloutStampProcessor(SpanProcessor):
    """Stamps ``agl.rollout.id`` / ``agl.attempt.id`` / ``agl.resources.id`` on every new span."""

    def on_start(self, span: Any, parent_context: otel_context.Context | None = None) -> None:
        rollout = current_rollout(parent_context)
        if rollout is not None:
            span.set_attributes(rollout.attributes())


class StoreSpanExporter(SpanExporter):
    """Writes finished spans into the LightningStore that owns their rollout."""

    def __init__(self, state: "_State") -> None:
        self._state = state

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        by_store: dict[int, tuple[LightningStore, list[Span]]] = {}
        for otel_span in spans:
            span = span_from_otel(otel_span)
            store = self._state.store_for(span.rollout_id)
            by_store.setdefault(id(store), (store, []))[1].append(span)
        ok = True
        for store, batch in by_store.values():
            try:
                store.add_spans(batch)
            except Exception:  # the agent must never crash because the store is unhappy
                log.exception("could not write %d spans to %r", len(batch), store)
                ok = False
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        pass


class _State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.default_store: LightningStore | None = None
        self.rollout_stores: dict[str, LightningStore] = {}
        self.provider: TracerProvider | None = None
        self.processor: BatchSpanProcessor | None = None

    def store_for(self, rollout_id: str | None) -> LightningStore:
        with self.lock:
            if rollout_id and rollout_id in self.rollout_stores:
                return self.rollout_stores[rollout_id]
            if self.default_store is None:
                self.default_store = LightningStore()
            return self.default_store


_state = _State()


def configure(
    store: LightningStore | str | None = None, *, tracer_provider: TracerProvider | None = None
) -> TracerProvider:
    """Send this process's spans to `store` (an instance or URL; default ``AGL_STORAGE`` or SQLite).

    Idempotent. Returns the SDK TracerProvider that carries our processors. Spans that ended
    before a switch of `store` go to the store that was configured when they ended.
    """
    if store is not None:
        flush()
    with _state.lock:
        if store is not None:
            _state.default_store = LightningStore(store) if isinstance(store, str) else store
        if _state.provider is None:
            provider = tracer_provider or trace.get_tracer_provider()
            if not isinstance(provider, TracerProvider):
                provider = TracerProvider(resource=OtelResource.create({"service.name": "agentlightning"}))
                trace.set_tracer_provider(provider)
            provider.add_span_processor(RolloutStampProcessor())
            _state.processor = BatchSpanProcessor(
                StoreSpanExporter(_state), schedule_delay_millis=200, max_export_batch_size=512
            )
            provider.add_span_processor(_state.processor)
            _state.provider = provider
            enable_thread_propagation()
        return _state.provider


def default_store() -> LightningStore:
    configure()
    return _state.store_for(None)


def register_rollout_store(rollout_id: str, store: LightningStore) -> None:
    with _state.lock:
        _state.rollout_stores[rollout_id] = store


def release_rollout_store(rollout_id: str) -> None:
    with _state.lock:
        _state.rollout_stores.pop(rollout_id, None)


def flush(timeout_ms: int = 30_000) -> bool:
    """Push every finished span into its store now."""
    return _state.processor.force_flush(timeout_ms) if _state.processor else True


def get_tracer(name: str = TRACER_NAME) -> trace.Tracer:
    return configure().get_tracer(name)
