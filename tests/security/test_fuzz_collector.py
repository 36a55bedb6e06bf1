"""``POST /v1/traces`` fuzzed: mutated protobuf, random JSON, random bytes, under every content type
and encoding. Each answer is below 500 and a refusal is one line; the collector then still stores
a valid export. The limits (`agl_core.server.limits`) answer 413 or 400 as SECURITY.md says."""

from __future__ import annotations

import gzip
import json
import zlib

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as pb
from opentelemetry.proto.common.v1 import common_pb2
from starlette.testclient import TestClient

from agl_core.server import BackgroundCollector
from agl_core.server.app import create_app
from agl_core.server.limits import MAX_ATTRIBUTE_CHARS, MAX_SPANS_PER_REQUEST
from agl_core.store import LightningStore
from tests.security.fuzzing import FUZZ, check_answer, examples

PROTOBUF, JSON = "application/x-protobuf", "application/json"
CONTENT_TYPES = [PROTOBUF, JSON, "application/protobuf", "application/json; charset=utf-8", "text/plain", "", None]
ENCODINGS = [None, "gzip", "deflate", "identity", "br", "gzip, deflate", "x-gzip"]


def _request(n_spans: int = 2, rollout: str = "ro-fuzz", attribute: common_pb2.AnyValue | None = None) -> pb.ExportTraceServiceRequest:
    request = pb.ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add()
    for i in range(n_spans):
        span = spans.spans.add(trace_id=b"\x01" * 16, span_id=(i + 1).to_bytes(8, "big"), name=f"span {i}")
        span.start_time_unix_nano, span.end_time_unix_nano = 1_000_000_000, 2_000_000_000
        span.attributes.add(key="agl.rollout.id", value=common_pb2.AnyValue(string_value=rollout))
        if attribute is not None:
            span.attributes.add(key="payload", value=attribute)
    return request


VALID = _request().SerializeToString()
VALID_JSON = json.dumps(
    {"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "01" * 16, "spanId": "02" * 8, "name": "json span", "startTimeUnixNano": "1000000000",
        "attributes": [{"key": "agl.rollout.id", "value": {"stringValue": "ro-json"}}],
    }]}]}]}  # fmt: skip
).encode()


@pytest.fixture(scope="module")
def store():
    store = LightningStore("memory://")
    yield store
    store.close()


@pytest.fixture(scope="module")
def client(store):
    with TestClient(create_app(store), raise_server_exceptions=False) as client:
        yield client


def _post(client, body: bytes, content_type: str | None, encoding: str | None = None) -> httpx.Response:
    headers = {k: v for k, v in (("content-type", content_type), ("content-encoding", encoding)) if v is not None}
    response = client.post("/v1/traces", content=body, headers=headers)
    check_answer("collector", response)
    return response


def _encode(body: bytes, encoding: str | None, really: bool) -> bytes:
    if not really or encoding not in ("gzip", "x-gzip", "deflate"):
        return body
    return gzip.compress(body) if "gzip" in encoding else zlib.compress(body)


def _still_stores_a_valid_export(client, store) -> None:
    before = store.count_spans("ro-fuzz")
    response = _post(client, VALID, PROTOBUF)
    assert response.status_code == 200 and store.count_spans("ro-fuzz") == before + 2


@settings(FUZZ, max_examples=examples(400))
@given(
    cut=st.integers(0, len(VALID)),
    flips=st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 7)), max_size=6),
    junk=st.binary(max_size=16),
    content_type=st.sampled_from(CONTENT_TYPES),
    encoding=st.sampled_from(ENCODINGS),
    compressed=st.booleans(),
)
def test_mutated_protobuf_bodies(client, store, cut, flips, junk, content_type, encoding, compressed):
    body = bytearray(VALID[:cut] + junk)
    for at, bit in flips:
        if at < len(body):
            body[at] ^= 1 << bit
    _post(client, _encode(bytes(body), encoding, compressed), content_type, encoding)


def _json_values(leaves=None):
    leaves = leaves or (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20))
    return st.recursive(leaves, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=20)


_IDS = st.one_of(st.text(max_size=40), st.sampled_from(["", "00" * 16, "zz" * 16, "01" * 16, "02" * 8, "0" * 31]), st.integers())
_ANY_VALUES = st.recursive(
    st.one_of(
        st.builds(lambda v: {"stringValue": v}, st.text(max_size=30)),
        st.builds(lambda v: {"intValue": v}, st.one_of(st.integers(), st.text(max_size=5))),
        st.builds(lambda v: {"doubleValue": v}, st.one_of(st.floats(), st.text(max_size=5))),
        st.builds(lambda v: {"bytesValue": v}, st.text(max_size=12)),
        _json_values(),
    ),
    lambda kids: st.builds(lambda vs: {"arrayValue": {"values": vs}}, st.lists(kids, max_size=3))
    | st.builds(lambda vs: {"kvlistValue": {"values": [{"key": f"k{i}", "value": v} for i, v in enumerate(vs)]}}, st.lists(kids, max_size=3)),
    max_leaves=10,
)
_OTLP_SPANS = st.fixed_dictionaries(
    {"traceId": _IDS, "spanId": _IDS, "name": st.one_of(st.text(max_size=20), st.integers())},
    optional={
        "parentSpanId": _IDS,
        "startTimeUnixNano": st.one_of(st.integers(-(2**70), 2**70), st.text(max_size=25)),
        "endTimeUnixNano": st.one_of(st.integers(-(2**70), 2**70), st.text(max_size=25)),
        "kind": st.integers(-5, 10),
        "attributes": st.lists(st.fixed_dictionaries({"key": st.text(max_size=10), "value": _ANY_VALUES}), max_size=4),
        "status": _json_values(),
        "events": st.lists(_json_values(), max_size=2),
    },
)
_OTLP_JSON = st.builds(
    lambda spans, resource: {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}]},
    st.lists(_OTLP_SPANS, max_size=3),
    _json_values(),
)


@settings(FUZZ, max_examples=examples(300))
@given(value=st.one_of(_OTLP_JSON, _json_values()), encoding=st.sampled_from([None, "gzip", "deflate"]))
def test_random_json_bodies(client, store, value, encoding):
    body = json.dumps(value).encode()
    _post(client, _encode(body, encoding, True), JSON, encoding)


@settings(FUZZ, max_examples=examples(300))
@given(body=st.binary(max_size=300), content_type=st.sampled_from(CONTENT_TYPES), encoding=st.sampled_from(ENCODINGS))
def test_random_bytes_and_invalid_utf8(client, store, body, content_type, encoding):
    _post(client, body, content_type, encoding)


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field, by hand: the SDK refuses to build messages this deep."""
    size, length = len(payload), b""
    while True:
        length += bytes([(size & 0x7F) | (0x80 if size > 0x7F else 0)])
        size >>= 7
        if not size:
            return bytes([number << 3 | 2]) + length + payload


def _nested_kvlist_request(depth: int, rollout: str) -> bytes:
    """A one-span export whose ``payload`` attribute nests `depth` kvlists."""
    value = common_pb2.AnyValue(string_value="bottom").SerializeToString()
    for _ in range(depth):  # AnyValue.kvlist_value (6) → KeyValueList.values (1) → KeyValue{key (1), value (2)}
        value = _field(6, _field(1, _field(1, b"k") + _field(2, value)))
    span = _request(1, rollout).resource_spans[0].scope_spans[0].spans[0].SerializeToString()
    span += _field(9, _field(1, b"payload") + _field(2, value))  # Span.attributes (9)
    return _field(1, _field(2, _field(2, span)))  # request.resource_spans → scope_spans → spans


def test_limits_answer_4xx_and_nothing_of_a_refused_request_is_stored(client, store):
    deep = b"[" * 1000 + b"]" * 1000
    assert _post(client, deep, JSON).status_code == 400
    deep_otlp = '{"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": ' + "[" * 80 + "]" * 80 + "}]}]}]}"
    assert _post(client, deep_otlp.encode(), JSON).status_code == 400
    assert _post(client, _nested_kvlist_request(150, "ro-deep"), PROTOBUF).status_code == 400
    huge = common_pb2.AnyValue(string_value="x" * (MAX_ATTRIBUTE_CHARS + 1))
    assert _post(client, _request(1, "ro-huge", huge).SerializeToString(), PROTOBUF).status_code == 413
    many = _request(MAX_SPANS_PER_REQUEST + 1, "ro-many").SerializeToString()
    assert _post(client, many, PROTOBUF).status_code == 413
    bomb = gzip.compress(b"\0" * (33 * 1024 * 1024))
    assert _post(client, bomb, PROTOBUF, "gzip").status_code == 413
    assert not any(store.query_spans(r) for r in ("ro-deep", "ro-huge", "ro-many"))
    # just under the limits is stored
    big = common_pb2.AnyValue(string_value="y" * MAX_ATTRIBUTE_CHARS)
    assert _post(client, _request(1, "ro-big", big).SerializeToString(), PROTOBUF).status_code == 200
    assert _post(client, _nested_kvlist_request(20, "ro-nest"), PROTOBUF).status_code == 200
    assert len(store.query_spans("ro-big")) == len(store.query_spans("ro-nest")) == 1
    _still_stores_a_valid_export(client, store)


def test_a_real_collector_survives_hostile_bodies_then_stores_a_valid_export(tmp_path):
    """The same over a socket (uvicorn on 127.0.0.1): the worst bodies, then a valid export."""
    store = LightningStore(f"sqlite:///{tmp_path / 'store.db'}")
    bodies = [
        (b"[" * 5000 + b"]" * 5000, JSON, None),
        (b"\xff\xfe\x00garbage", JSON, None),
        (VALID[: len(VALID) // 2], PROTOBUF, None),
        (gzip.compress(VALID)[:-9], PROTOBUF, "gzip"),
        (VALID, PROTOBUF, "br"),
        (VALID, "text/html", None),
        (json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": 5}]}]}]}).encode(), JSON, None),
    ]
    with BackgroundCollector(store) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        for body, content_type, encoding in bodies * 5:
            _post(http, body, content_type, encoding)
        assert _post(http, VALID_JSON, JSON).status_code == 200
        _still_stores_a_valid_export(http, store)
        assert len(store.query_spans("ro-json")) == 1
    store.close()


@pytest.fixture(autouse=True, scope="module")
def _after_all(client, store):
    yield
    _still_stores_a_valid_export(client, store)

