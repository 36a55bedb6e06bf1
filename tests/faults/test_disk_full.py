"""The disk filling up under the SQLite store, on a small tmpfs the test mounts (root only).

A write that does not fit is one clear line (`StoreUnavailable`; the collector answers 503 with
Retry-After, which OTLP exporters retry); everything stored before stays; once space returns the
same store (and the same collector) takes writes again.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterator

import grpc
import httpx
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agl_core.server import BackgroundCollector
from agl_core.server.grpc_receiver import start_grpc_receiver
from agl_core.store.base import LightningStore, StoreUnavailable
from agl_core.store.sql import SqlStore
from agl_core.tracing import semconv
from agl_core.tracing.convert import span_from_otel
from tests.faults.conftest import report

ROLLOUT = "ro-disk-full"
MAX_BATCHES = 200  # 2 MiB fill up long before


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, a quarter of it taken by a file the test deletes to give space back."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root and CAP_SYS_ADMIN): {done.stderr.strip()}")
    (mount / "ballast").write_bytes(b"\0" * 512 * 1024)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


class Spans:
    """Batches of new real SDK spans, 50 of about 2 KB each."""

    def __init__(self) -> None:
        self._made = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self._made))
        self._tracer = provider.get_tracer("faults")
        self.batches = 0

    def batch(self) -> tuple[ReadableSpan, ...]:
        self._made.clear()
        for n in range(50):
            with self._tracer.start_as_current_span(f"batch-{self.batches} span-{n}") as span:
                span.set_attributes({semconv.AGL_ROLLOUT_ID: ROLLOUT, "payload": "x" * 2000})
        self.batches += 1
        return self._made.get_finished_spans()


def _keys(spans: tuple[ReadableSpan, ...]) -> set[tuple[str, str]]:
    return {(s.trace_id, s.span_id) for s in map(span_from_otel, spans)}


def _grpc_status(store: SqlStore, spans: tuple[ReadableSpan, ...]) -> grpc.StatusCode:
    server, port = start_grpc_receiver(store, "127.0.0.1", 0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            TraceServiceStub(channel).Export(encode_spans(spans), timeout=10)
        return grpc.StatusCode.OK
    except grpc.RpcError as exc:
        return exc.code()
    finally:
        server.stop(0)


def test_a_full_disk_is_one_line_loses_nothing_and_passes_once_space_returns(small_disk: Path) -> None:
    url = f"sqlite:///{small_disk / 'store.db'}"
    store = SqlStore(url)
    spans = Spans()
    acked: set[tuple[str, str]] = set()
    refused: StoreUnavailable | None = None
    for _ in range(MAX_BATCHES):
        batch = spans.batch()
        try:
            store.add_spans([span_from_otel(s) for s in batch])
        except StoreUnavailable as exc:
            refused = exc
            break
        acked |= _keys(batch)
    assert refused is not None, "the disk never filled"
    message = str(refused)
    assert "\n" not in message and "database or disk is full" in message and url in message, message
    assert store.count_spans(ROLLOUT) == len(acked)  # reads still work, and the refused batch left nothing

    with BackgroundCollector(store) as collector:
        full = spans.batch()
        answer = httpx.post(
            f"{collector.url}/v1/traces",
            content=encode_spans(full).SerializeToString(),
            headers={"content-type": "application/x-protobuf"},
        )
        assert answer.status_code == 503 and answer.headers["retry-after"] == "1"  # OTLP exporters retry this
        exporter = OTLPSpanExporter(endpoint=f"{collector.url}/v1/traces", timeout=1)
        assert exporter.export(full) is SpanExportResult.FAILURE  # still full when its retries give up
        assert _grpc_status(store, full) == grpc.StatusCode.UNAVAILABLE  # the gRPC receiver's retryable refusal
        with LightningStore(collector.url) as remote, pytest.raises(StoreUnavailable, match="disk is full"):
            remote.add_spans([span_from_otel(s) for s in full])  # the store API's 503, raised as such by HttpStore

        (small_disk / "ballast").unlink()  # space returns
        assert exporter.export(full) is SpanExportResult.SUCCESS
        acked |= _keys(full)
        again = spans.batch()
        store.add_spans([span_from_otel(s) for s in again])
        acked |= _keys(again)
        exporter.shutdown()
    store.close()

    with SqlStore(url) as reopened:
        stored = [(s.trace_id, s.span_id) for s in reopened.query_spans(ROLLOUT)]
    report(
        f"disk full (2 MiB tmpfs): {spans.batches} batches of 50 spans tried, {len(acked)} spans acknowledged, "
        f"{len(set(stored))} stored ({len(stored) - len(set(stored))} twice) after space returned; the refusal: {message!r}"
    )
    assert set(stored) == acked and len(stored) == len(acked)
