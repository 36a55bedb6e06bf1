"""OTLP/HTTP trace ingestion: request bodies → `Span`s, and the answers the OTLP spec asks for.

Protobuf bodies are parsed by ``opentelemetry-proto``; JSON bodies (hex ids, camelCase keys,
integer enums) by ``opentelemetry-proto-json``. Both give messages with the same field names, so
one mapper (`spans_from_request`) reads either: the only difference is how ``AnyValue`` says
which of its values is set, which `_any_value` handles.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import zlib
from dataclasses import dataclass, field
from typing import Any, Iterable

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as pb
from opentelemetry.proto_json.collector.trace.v1 import trace_service as pj

from agl_core.server.limits import LimitError, check_attributes, check_span_count, parse_json
from agl_core.tracing.convert import rollout_ids
from agl_core.types import Span, SpanEvent, SpanStatus, StatusCode

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

_STATUS_CODES: dict[int, StatusCode] = {0: "UNSET", 1: "OK", 2: "ERROR"}
# Fields of AnyValue in the order proto-json decodes them; the first one set is the value.
_ANY_VALUE_FIELDS = (
    "string_value",
    "bool_value",
    "int_value",
    "double_value",
    "array_value",
    "kvlist_value",
    "bytes_value",
)
_PLAIN_VALUES = frozenset(("string_value", "bool_value", "int_value"))


class OtlpError(Exception):
    """A request the collector refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def media_type(content_type: str | None) -> str:
    """The body's format (`PROTOBUF` or `JSON`), or `OtlpError` 415."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind in (PROTOBUF, "application/protobuf"):
        return PROTOBUF
    if kind == JSON:
        return JSON
    raise OtlpError(
        415, f"unsupported content type {(content_type or '')[:100]!r}: send {PROTOBUF} or {JSON} to /v1/traces"
    )


def decompress(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    """Undo ``Content-Encoding`` (gzip, deflate), never inflating past ``max_bytes``."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise OtlpError(415, f"unsupported content encoding {encoding[:50]!r}: use gzip, deflate or none")
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # accepts gzip and zlib headers
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise OtlpError(400, f"body is not valid {encoding} data: {exc}") from None
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise OtlpError(413, f"decompressed body is over the {max_bytes}-byte limit")
    if not inflater.eof:
        raise OtlpError(400, f"{encoding} body is truncated")
    return out


def decode_request(body: bytes, kind: str) -> Any:
    """An ``ExportTraceServiceRequest`` (protobuf message or proto-json dataclass)."""
    if kind == PROTOBUF:
        request = pb.ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise OtlpError(400, f"body is not an OTLP ExportTraceServiceRequest (protobuf): {exc}") from None
        return request
    try:
        return pj.ExportTraceServiceRequest.from_dict(parse_json(body))
    except LimitError:
        raise
    except (ValueError, TypeError, AttributeError, KeyError, binascii.Error) as exc:
        raise OtlpError(400, f"body is not an OTLP ExportTraceServiceRequest (JSON): {exc}") from None


def _any_value(value: Any) -> Any:
    if value is None:
        return None
    which_oneof = getattr(value, "WhichOneof", None)
    if which_oneof is not None:
        which = which_oneof("value")
    else:
        which = next((f for f in _ANY_VALUE_FIELDS if getattr(value, f) is not None), None)
    if which is None:
        return None
    raw = getattr(value, which)
    if which in _PLAIN_VALUES:
        return raw
    if which == "array_value":
        return [_any_value(v) for v in raw.values]
    if which == "kvlist_value":
        return _attributes(raw.values)
    if which == "bytes_value":
        return base64.b64encode(raw).decode("ascii")  # as OTLP/JSON writes bytes
    if which == "double_value" and not math.isfinite(raw):
        return "NaN" if math.isnan(raw) else ("Infinity" if raw > 0 else "-Infinity")
    return raw


def _attributes(pairs: Iterable[Any]) -> dict[str, Any]:
    return {kv.key: _any_value(kv.value) for kv in pairs}


def _id_hex(raw: bytes | None, size: int, what: str) -> str:
    if not raw:
        raise ValueError(f"{what} is missing")
    if len(raw) != size:
        raise ValueError(f"{what} has {len(raw)} bytes, expected {size}")
    if not any(raw):
        raise ValueError(f"{what} is all zeros")
    return raw.hex()


def _optional_id_hex(raw: bytes | None, size: int, what: str) -> str | None:
    """None for an absent (empty or all-zero) id, as OTLP encodes "no parent"."""
    return _id_hex(raw, size, what) if raw and any(raw) else None


def _span(otlp: Any, resource: dict[str, Any]) -> Span:
    attributes = _attributes(otlp.attributes)
    rollout_id, attempt_id = rollout_ids(attributes, resource)
    status = otlp.status
    end_ns = otlp.end_time_unix_nano or 0
    return Span(
        trace_id=_id_hex(otlp.trace_id, 16, "trace_id"),
        span_id=_id_hex(otlp.span_id, 8, "span_id"),
        parent_id=_optional_id_hex(otlp.parent_span_id, 8, "parent_span_id"),
        name=otlp.name or "",
        start_time=(otlp.start_time_unix_nano or 0) / 1e9,
        end_time=end_ns / 1e9 if end_ns else None,
        attributes=attributes,
        events=[
            SpanEvent(name=e.name or "", timestamp=(e.time_unix_nano or 0) / 1e9, attributes=_attributes(e.attributes))
            for e in otlp.events
        ],
        status=SpanStatus(
            code=_STATUS_CODES.get(int(status.code or 0), "UNSET") if status is not None else "UNSET",
            description=(status.message or None) if status is not None else None,
        ),
        resource=resource,
        rollout_id=rollout_id,
        attempt_id=attempt_id,
    )


@dataclass
class DecodedSpans:
    spans: list[Span] = field(default_factory=list)
    rejected: int = 0
    errors: list[str] = field(default_factory=list)


def spans_from_request(request: Any) -> DecodedSpans:
    """Every span of the request as a `Span`; malformed spans are counted, not raised.

    A request beyond `agl_core.server.limits` (too many spans, an attribute too large) raises
    `LimitError` (413): nothing of it is stored.
    """
    check_span_count(sum(len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans))
    out = DecodedSpans()
    for resource_spans in request.resource_spans:
        res = resource_spans.resource
        resource = _attributes(res.attributes) if res is not None else {}
        for scope_spans in resource_spans.scope_spans:
            for otlp in scope_spans.spans:
                try:
                    out.spans.append(_span(otlp, resource))
                except ValueError as exc:
                    out.rejected += 1
                    if len(out.errors) < 5:
                        out.errors.append(f"span {otlp.name[:100]!r}: {exc}")
    check_attributes(out.spans)
    return out


def encode_response(kind: str, rejected: int = 0, error_message: str = "") -> bytes:
    """An ``ExportTraceServiceResponse`` in the request's format, with partial_success if needed."""
    if kind == PROTOBUF:
        response = pb.ExportTraceServiceResponse()
        if rejected or error_message:
            response.partial_success.rejected_spans = rejected
            response.partial_success.error_message = error_message
        return response.SerializeToString()
    # the generated classes are dataclasses behind an alias mypy cannot follow: their fields look unknown
    partial = pj.ExportTracePartialSuccess(rejected_spans=rejected, error_message=error_message)  # type: ignore[call-arg]
    response_json = pj.ExportTraceServiceResponse(partial_success=partial if rejected or error_message else None)  # type: ignore[call-arg]
    return response_json.to_json().encode()


def encode_error(kind: str | None, status: int, message: str) -> tuple[bytes, str]:
    """The body of a 4xx answer: a ``google.rpc.Status`` in the request's format where possible."""
    if kind == PROTOBUF:
        try:
            from google.rpc import status_pb2
        except ImportError:  # googleapis-common-protos comes with the OTLP exporters, not always
            return message.encode(), "text/plain; charset=utf-8"
        return status_pb2.Status(code=_GRPC_CODES.get(status, 3), message=message).SerializeToString(), PROTOBUF
    return json.dumps({"code": _GRPC_CODES.get(status, 3), "message": message}).encode(), JSON


# HTTP status → google.rpc.Code, as the OTLP spec pairs them.
_GRPC_CODES = {400: 3, 413: 8, 415: 3, 429: 8, 500: 13, 503: 14}
