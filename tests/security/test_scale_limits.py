"""Limits that protect the store server, at the sizes SECURITY.md names: a thousand exporters at
once (429 beyond `MAX_CONCURRENT_EXPORTS`, every acknowledged span stored, every refused export
stored once retried), a 10 MB attribute (413 on both receivers), and a rollout of 100,000 spans
that the dashboard still pages quickly."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as pb
from opentelemetry.proto.common.v1 import common_pb2
from starlette.testclient import TestClient

from agl_core.dashboard import create_dashboard_app
from agl_core.server import BackgroundCollector
from agl_core.store import LightningStore
from agl_core.types import Span
from tests.security.fuzzing import check_answer

EXPORTERS = 1000


def _export(exporter: int, rollout: str, payload: str = "") -> bytes:
    request = pb.ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add()
    for i in range(2):
        span = spans.spans.add(trace_id=(exporter + 1).to_bytes(16, "big"), span_id=(2 * exporter + i + 1).to_bytes(8, "big"))
        span.name, span.start_time_unix_nano = f"exporter {exporter}", 1
        span.attributes.add(key="agl.rollout.id", value=common_pb2.AnyValue(string_value=rollout))
        if payload:
            span.attributes.add(key="payload", value=common_pb2.AnyValue(string_value=payload))
    return request.SerializeToString()


async def _crowd(url: str) -> list[tuple[int, int]]:
    """Every exporter posts at once; returns (exporter, status) pairs."""
    limits = httpx.Limits(max_connections=EXPORTERS, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as http:

        async def one(i: int) -> tuple[int, int]:
            response = await http.post("/v1/traces", content=_export(i, "ro-crowd"), headers={"content-type": "application/x-protobuf"})
            check_answer("collector", response)
            return i, response.status_code

        return await asyncio.gather(*(one(i) for i in range(EXPORTERS)))


def test_a_thousand_exporters_at_once(tmp_path):
    store = LightningStore(f"sqlite:///{tmp_path / 'store.db'}")
    with BackgroundCollector(store) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        answers = asyncio.run(_crowd(server.url))
        statuses = Counter(status for _, status in answers)
        assert set(statuses) <= {200, 429} and statuses[200] > 0, statuses
        assert store.count_spans("ro-crowd") == 2 * statuses[200]  # acknowledged == stored
        for i, status in answers:  # what an exporter does with a 429: retry it later
            if status == 429:
                retried = http.post("/v1/traces", content=_export(i, "ro-crowd"), headers={"content-type": "application/x-protobuf"})
                assert retried.status_code == 200
        assert store.count_spans("ro-crowd") == 2 * EXPORTERS
        print(f"\n{EXPORTERS} exporters at once: {dict(statuses)}; stored {store.count_spans('ro-crowd')} spans after retries")
    store.close()


def test_a_10_mb_attribute_is_413_on_both_receivers(tmp_path):
    store = LightningStore(f"sqlite:///{tmp_path / 'store.db'}")
    ten_mb = "x" * (10 * 1024 * 1024)
    with BackgroundCollector(store) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        otlp = http.post("/v1/traces", content=_export(0, "ro-big", ten_mb), headers={"content-type": "application/x-protobuf"})
        span = Span(trace_id="1" * 32, span_id="2" * 16, name="big", start_time=1.0, attributes={"payload": ten_mb}, rollout_id="ro-big")
        api = http.post("/api/store/add_spans", json={"spans": [span.model_dump(mode="json")]})
        for response in (otlp, api):
            check_answer("collector", response)
            assert response.status_code == 413, response.text[:200]
        assert store.count_spans("ro-big") == 0
    store.close()


def test_a_rollout_of_100k_spans_pages_quickly_in_the_dashboard(tmp_path):
    store = LightningStore(f"sqlite:///{tmp_path / 'store.db'}")
    rollout = store.start_rollout({"q": "long"})
    ids = {"rollout_id": rollout.rollout_id, "attempt_id": rollout.attempt.attempt_id}
    for batch in range(10):
        store.add_spans([
            Span(trace_id="1" * 32, span_id=f"{batch * 10_000 + i + 1:016x}", name=f"step {i}", start_time=float(i),
                 end_time=i + 0.5, attributes={"i": i}, **ids)
            for i in range(10_000)
        ])  # fmt: skip
    client = TestClient(create_dashboard_app(store))
    started = time.monotonic()
    detail = client.get(f"/api/rollouts/{rollout.rollout_id}").json()
    first = client.get(f"/api/rollouts/{rollout.rollout_id}/spans", params={"limit": 500}).json()
    last = client.get(f"/api/rollouts/{rollout.rollout_id}/spans", params={"limit": 500, "offset": 99_500}).json()
    elapsed = time.monotonic() - started
    assert detail["span_count"] == first["total"] == 100_000
    assert len(first["items"]) == len(last["items"]) == 500 and last["items"][-1]["name"] == "step 9999"
    assert client.get(f"/api/rollouts/{rollout.rollout_id}/spans", params={"limit": 100_000}).status_code == 400
    assert elapsed < 5, f"three pages of a 100,000-span rollout took {elapsed:.1f} s"
    store.close()
