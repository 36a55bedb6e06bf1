"""Finished spans into the store: `configure()`, the store exporter, the rollout → store map.

Spans go to the store of their rollout when this process knows it (the attempt lifecycle
registers it), else to the configured default store (``AGL_STORAGE`` or SQLite).
"""

from __future__ import annotations

import logging
import threading
from typing import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

from agl_core.store import LightningStore
from agl_core.tracing import provider as tracing_provider
from agl_core.tracing.convert import span_from_otel
from agl_core.types import Span

log = logging.getLogger("agentlightning")


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
        self.processor: BatchSpanProcessor | None = None

    def store_for(self, rollout_id: str | None) -> LightningStore:
        with self.lock:
            if rollout_id and rollout_id in self.rollout_stores:
                return self.rollout_stores[rollout_id]
            if self.default_store is None:
                self.default_store = LightningStore()
            return self.default_store


_state = _State()


def _add_store_exporter(provider: TracerProvider) -> None:
    _state.processor = BatchSpanProcessor(StoreSpanExporter(_state), schedule_delay_millis=200, max_export_batch_size=512)
    provider.add_span_processor(_state.processor)


tracing_provider.on_provider_ready(_add_store_exporter)


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
            _state.default_store = LightningStore(store) if isinstance(store, str) else store
    return tracing_provider.tracer_provider(tracer_provider)


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
