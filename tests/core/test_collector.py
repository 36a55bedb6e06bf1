"""The OTLP/HTTP collector fed by stock OpenTelemetry exporters, and by hand-made bad bodies."""

from __future__ import annotations

import base64
import gzip
import json
import zlib

import httpx
import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as pb
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from agl_core.server import BackgroundCollector
from agl_core.store.base import LightningStore
from agl_core.store.sql import SqlStore
from agl_core.tracing import semconv
from agl_core.tracing.convert import span_from_otel


@pytest.fixture()
def sqlite_url(tmp_path, monkeypatch):
    monkeypatch.setenv("AGL_HOME", str(tmp_path / "home"))
    return f"sqlite:///{tmp_path / 'collector.db'}"


@pytest.fixture()
def collector(sqlite_url):
    store = SqlStore(sqlite_url)
    with BackgroundCollector(store, max_body_bytes=256 * 1024) as server:
        yield server
    store.close()


def _run_agent(provider: TracerProvider, rollout_on_span: str | None) -> None:
    """A small traced 'agent': root → chat (with events) → tool, plus a reward span."""
    tracer = provider.get_tracer("test-agent")
    ids = {semconv.AGL_ROLLOUT_ID: rollout_on_span, semconv.AGL_ATTEMPT_ID: "at-span"} if rollout_on_span else {}
    with tracer.start_as_current_span("invoke_agent calc", attributes={**ids, semconv.GEN_AI_AGENT_NAME: "calc"}):
        with tracer.start_as_current_span("chat gpt-x", attributes={**ids, "gen_ai.usage.input_tokens": 12}) as chat:
            chat.set_attribute("agl.prompt.token_ids", [1, 2, 3])
            chat.set_attribute("gen_ai.response.finish_reasons", ["stop"])
            chat.set_attribute("temperature", 0.25)
            chat.set_attribute("cached", False)
            chat.add_event("gen_ai.choice", {"index": 0, "text": "42"})
            with tracer.start_as_current_span("execute_tool add", attributes=ids) as tool:
                tool.set_status(Status(StatusCode.ERROR, "tool broke"))
        with tracer.start_as_current_span(semconv.SPAN_REWARD, attributes={**ids, semconv.AGL_REWARD_VALUE: 0.5}):
            pass


def _traced(resource_attrs: dict, rollout_on_span: str | None, exporter: OTLPSpanExporter):
    """Runs the agent under a real SDK provider; returns what the SDK itself recorded."""
    local = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "agent", **resource_attrs}))
    provider.add_span_processor(SimpleSpanProcessor(local))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _run_agent(provider, rollout_on_span)
    provider.shutdown()
    return [span_from_otel(s) for s in local.get_finished_spans()]


def _key(span):
    return (span.trace_id, span.span_id)


def _assert_same(stored, expected):
    assert len(stored) == len(expected) > 0
    by_id = {_key(s): s for s in stored}
    for want in expected:
        got = by_id[_key(want)]
        assert got.name == want.name
        assert got.parent_id == want.parent_id
        assert got.attributes == want.attributes
        assert got.resource == want.resource
        assert got.status == want.status
        assert [(e.name, e.attributes) for e in got.events] == [(e.name, e.attributes) for e in want.events]
        assert got.start_time == pytest.approx(want.start_time, abs=1e-6)
        assert got.end_time == pytest.approx(want.end_time, abs=1e-6)
        assert (got.rollout_id, got.attempt_id) == (want.rollout_id, want.attempt_id)


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip, Compression.Deflate])
def test_stock_exporter_spans_come_back_by_rollout(collector, sqlite_url, compression):
    endpoint = f"{collector.url}/v1/traces"
    on_resource = _traced(
        {semconv.AGL_ROLLOUT_ID: "ro-res", semconv.AGL_ATTEMPT_ID: "at-res"},
        None,
        OTLPSpanExporter(endpoint=endpoint, compression=compression),
    )
    on_spans = _traced({}, "ro-span", OTLPSpanExporter(endpoint=endpoint, compression=compression))
    assert {s.rollout_id for s in on_resource} == {"ro-res"} and {s.rollout_id for s in on_spans} == {"ro-span"}

    remote = LightningStore(collector.url)
    local = SqlStore(sqlite_url)
    try:
        for rollout, expected in (("ro-res", on_resource), ("ro-span", on_spans)):
            _assert_same(remote.query_spans(rollout), expected)
            _assert_same(local.query_spans(rollout), expected)
            _assert_same(remote.query_spans(rollout, expected[0].attempt_id), expected)
        # the parent links survive: every non-root span's parent is in the same rollout
        spans = remote.query_spans("ro-span")
        ids = {s.span_id for s in spans}
        assert sum(s.parent_id is None for s in spans) == 1
        assert all(s.parent_id in ids for s in spans if s.parent_id)
    finally:
        remote.close()
        local.close()


def _json_body(spans_pb: pb.ExportTraceServiceRequest) -> bytes:
    """OTLP/JSON of a request, written by hand for the test: hex ids, camelCase, integer enums."""
    body = MessageToDict(spans_pb, use_integers_for_enums=True)
    for rs in body["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(body).encode()


@pytest.mark.parametrize("encoding", [None, "gzip", "deflate"])
def test_json_bodies(collector, encoding):
    local = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({semconv.AGL_ROLLOUT_ID: "ro-json", "tags": "x"}))
    provider.add_span_processor(SimpleSpanProcessor(local))
    _run_agent(provider, None)
    sdk_spans = local.get_finished_spans()
    body = _json_body(encode_spans(sdk_spans))
    assert '"traceId": "' in body.decode() and "kind" in body.decode()
    headers = {"content-type": "application/json"}
    if encoding == "gzip":
        body, headers["content-encoding"] = gzip.compress(body), "gzip"
    elif encoding == "deflate":
        body, headers["content-encoding"] = zlib.compress(body), "deflate"
    answer = httpx.post(f"{collector.url}/v1/traces", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json() == {}  # full success: no partialSuccess
    with LightningStore(collector.url) as remote:
        _assert_same(remote.query_spans("ro-json"), [span_from_otel(s) for s in sdk_spans])


def test_spans_without_rollout_ids_are_kept_unassigned(collector):
    spans = _traced({}, None, OTLPSpanExporter(endpoint=f"{collector.url}/v1/traces"))
    with LightningStore(collector.url) as remote:
        kept = remote.query_spans(unassigned=True)
        _assert_same(kept, spans)
        assert all(s.rollout_id is None for s in kept)
        assert remote.query_spans(trace_id=spans[0].trace_id)


def _protobuf_request(span_ids: list[bytes], trace_id: bytes = b"\x01" * 16) -> bytes:
    request = pb.ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for i, span_id in enumerate(span_ids):
        span = scope.spans.add(trace_id=trace_id, span_id=span_id, name=f"s{i}", start_time_unix_nano=10**18)
        span.attributes.add(key=semconv.AGL_ROLLOUT_ID).value.string_value = "ro-partial"
        kv = span.attributes.add(key="nested")
        inner = kv.value.kvlist_value.values.add(key="list")
        inner.value.array_value.values.add().int_value = 7
        inner.value.array_value.values.add().double_value = float("inf")
    return request.SerializeToString()


def test_partial_success_for_invalid_span_ids(collector):
    body = _protobuf_request([b"\x02" * 8, b"\x03" * 5, b"\x04" * 8, b"\x00" * 8])
    answer = httpx.post(f"{collector.url}/v1/traces", content=body, headers={"content-type": "application/x-protobuf"})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/x-protobuf"
    response = pb.ExportTraceServiceResponse.FromString(answer.content)
    assert response.partial_success.rejected_spans == 2
    assert "span_id has 5 bytes" in response.partial_success.error_message
    with LightningStore(collector.url) as remote:
        stored = remote.query_spans("ro-partial")
    assert sorted(s.name for s in stored) == ["s0", "s2"]
    assert stored[0].attributes["nested"] == {"list": [7, "Infinity"]}

    # the same through JSON: the partial success comes back as OTLP/JSON
    doc = {
        "resourceSpans": [{"scopeSpans": [{"spans": [
            {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "ok", "kind": 1, "startTimeUnixNano": "1000"},
            {"traceId": "ab" * 15, "spanId": "ef" * 8, "name": "short-trace", "startTimeUnixNano": "1000"},
        ]}]}]
    }
    answer = httpx.post(f"{collector.url}/v1/traces", json=doc)
    assert answer.status_code == 200
    assert answer.json()["partialSuccess"]["rejectedSpans"] in (1, "1")
    assert "trace_id has 15 bytes" in answer.json()["partialSuccess"]["errorMessage"]


@pytest.mark.parametrize(
    "body, headers, status, words",
    [
        (b"\xff\xff\xff\xff\xff", {"content-type": "application/x-protobuf"}, 400, "protobuf"),
        (b"{not json", {"content-type": "application/json"}, 400, "JSON"),
        (b'{"resourceSpans": 5}', {"content-type": "application/json"}, 400, "JSON"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', {"content-type": "application/json"}, 400, "hex"),
        (b"hello", {"content-type": "text/plain"}, 415, "content type"),
        (b"hello", {"content-type": "application/json", "content-encoding": "br"}, 415, "encoding"),
        (b"not gzip at all", {"content-type": "application/x-protobuf", "content-encoding": "gzip"}, 400, "gzip"),
        (gzip.compress(b"{}")[:-6], {"content-type": "application/json", "content-encoding": "gzip"}, 400, "truncated"),
        (b"x" * 300_000, {"content-type": "application/x-protobuf"}, 413, "limit"),
        (gzip.compress(b"\0" * 5_000_000), {"content-type": "application/x-protobuf", "content-encoding": "gzip"}, 413, "limit"),
    ],
    ids=["garbage-protobuf", "bad-json", "wrong-json-shape", "bad-hex", "text", "brotli", "not-gzip", "truncated-gzip", "oversized", "gzip-bomb"],
)
def test_malformed_bodies_are_refused_and_the_server_keeps_answering(collector, body, headers, status, words):
    answer = httpx.post(f"{collector.url}/v1/traces", content=body, headers=headers)
    assert answer.status_code == status
    if headers["content-type"] == "application/x-protobuf":
        from google.rpc import status_pb2

        message = status_pb2.Status.FromString(answer.content).message
    elif headers["content-type"] == "application/json":
        message = answer.json()["message"]
    else:
        message = answer.text
    assert words.lower() in message.lower()

    assert httpx.get(f"{collector.url}/health").json()["status"] == "ok"
    ok = httpx.post(
        f"{collector.url}/v1/traces", content=_protobuf_request([b"\x09" * 8]), headers={"content-type": "application/x-protobuf"}
    )
    assert ok.status_code == 200


def test_agent_lightning_collector_command(tmp_path):
    """The CLI command itself, as a separate process, fed by the stock exporter."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    from tests.fixtures.scripted_openai import free_port

    port, grpc_port = free_port(), free_port()
    db = tmp_path / "cli.db"
    cli = Path(sys.executable).with_name("agent-lightning")
    env = {**os.environ, "AGL_HOME": str(tmp_path / "home")}
    server = subprocess.Popen(
        [str(cli), "collector", "--host", "127.0.0.1", "--port", str(port), "--store", f"sqlite:///{db}",
         "--grpc-port", str(grpc_port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, server.stdout.read().decode()
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "collector did not start"
            time.sleep(0.1)
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        expected = _traced({semconv.AGL_ROLLOUT_ID: "ro-cli"}, None, OTLPSpanExporter(endpoint=f"{url}/v1/traces"))
        by_grpc = _traced(
            {semconv.AGL_ROLLOUT_ID: "ro-cli-grpc"}, None,
            GrpcSpanExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True),
        )
        with LightningStore(url) as remote:
            _assert_same(remote.query_spans("ro-cli"), expected)
            _assert_same(remote.query_spans("ro-cli-grpc"), by_grpc)
    finally:
        server.terminate()
        server.wait(timeout=10)
    with SqlStore(f"sqlite:///{db}") as local:
        _assert_same(local.query_spans("ro-cli"), expected)


def test_otlp_grpc_receiver(sqlite_url):
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcSpanExporter,
    )

    from agl_core.server.grpc_receiver import start_grpc_receiver

    store = SqlStore(sqlite_url)
    server, port = start_grpc_receiver(store, "127.0.0.1", 0)
    try:
        expected = _traced(
            {semconv.AGL_ROLLOUT_ID: "ro-grpc"}, None, GrpcSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True)
        )
        _assert_same(store.query_spans("ro-grpc"), expected)
    finally:
        server.stop(grace=1).wait()
        store.close()


TOKEN = "s3cret/+ token"  # characters that OTEL_EXPORTER_OTLP_HEADERS must carry percent-encoded


def test_a_store_server_with_a_token_serves_only_those_who_present_it(sqlite_url, monkeypatch):
    from agl_core.runtime.program import CommandAgent
    from agl_core.store.base import StoreError

    monkeypatch.delenv("AGL_STORE_TOKEN", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_HEADERS", raising=False)
    store = SqlStore(sqlite_url)
    with BackgroundCollector(store, token=TOKEN) as server:
        assert httpx.get(f"{server.url}/health").status_code == 200  # probes need no token
        refused = httpx.post(f"{server.url}/api/store/query_rollouts", json={})
        assert refused.status_code == 401 and "AGL_STORE_TOKEN" in refused.json()["error"]["message"]
        with LightningStore(server.url) as client, pytest.raises(StoreError, match="401.*AGL_STORE_TOKEN"):
            client.enqueue_rollout({"q": 1})
        _traced({semconv.AGL_ROLLOUT_ID: "ro-anonymous"}, None, OTLPSpanExporter(endpoint=f"{server.url}/v1/traces"))
        assert store.query_spans("ro-anonymous") == [] and store.query_rollouts() == []

        monkeypatch.setenv("AGL_STORE_TOKEN", TOKEN)
        with LightningStore(server.url) as client:
            rollout = client.enqueue_rollout({"q": 1})
            assert [r.rollout_id for r in client.query_rollouts()] == [rollout.rollout_id]
            # what a command agent's exporter is given: the endpoint and the token as an OTLP header
            for key, value in CommandAgent("prog", "true")._otlp_exporter_env(client).items():
                monkeypatch.setenv(key, value)
        expected = _traced({semconv.AGL_ROLLOUT_ID: "ro-program"}, None, OTLPSpanExporter())
        _assert_same(store.query_spans("ro-program"), expected)
    store.close()


def test_grpc_receiver_with_a_token(sqlite_url):
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcSpanExporter,
    )

    from agl_core.server.grpc_receiver import start_grpc_receiver

    store = SqlStore(sqlite_url)
    server, port = start_grpc_receiver(store, "127.0.0.1", 0, token=TOKEN)
    try:
        _traced({semconv.AGL_ROLLOUT_ID: "ro-anonymous"}, None, GrpcSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=5))
        assert store.query_spans("ro-anonymous") == []
        exporter = GrpcSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True, headers=(("authorization", f"Bearer {TOKEN}"),))
        expected = _traced({semconv.AGL_ROLLOUT_ID: "ro-grpc"}, None, exporter)
        _assert_same(store.query_spans("ro-grpc"), expected)
    finally:
        server.stop(grace=1).wait()
        store.close()


def test_collector_refuses_a_public_bind_without_a_token(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from agl_core.cli.main import main

    monkeypatch.delenv("AGL_STORE_TOKEN", raising=False)
    db = tmp_path / "never.db"
    result = CliRunner().invoke(main, ["collector", "--host", "0.0.0.0", "--store", f"sqlite:///{db}"])
    assert result.exit_code != 0 and "AGL_STORE_TOKEN" in result.output and "refusing to serve the store" in result.output
    assert not db.exists()  # refused before opening anything
