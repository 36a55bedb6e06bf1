"""Conversion of OpenTelemetry SDK spans into the store's `Span`."""

from __future__ import annotations

import json
from typing import Any, Mapping

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode as OtelStatusCode

from agl_core.tracing import semconv
from agl_core.types import Span, SpanEvent, SpanStatus, StatusCode

_STATUS_CODES: dict[OtelStatusCode, StatusCode] = {
    OtelStatusCode.UNSET: "UNSET",
    OtelStatusCode.OK: "OK",
    OtelStatusCode.ERROR: "ERROR",
}


def jsonable(value: Any) -> Any:
    """Attribute values as JSON can hold them (OTel gives tuples for arrays)."""
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def rollout_ids(attributes: Mapping[str, Any], resource: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The rollout and attempt a span belongs to: span attributes first, then the resource."""
    rollout = attributes.get(semconv.AGL_ROLLOUT_ID) or resource.get(semconv.AGL_ROLLOUT_ID)
    attempt = attributes.get(semconv.AGL_ATTEMPT_ID) or resource.get(semconv.AGL_ATTEMPT_ID)
    return (str(rollout) if rollout else None, str(attempt) if attempt else None)


def span_from_otel(span: ReadableSpan) -> Span:
    ctx = span.context
    attrs = {k: jsonable(v) for k, v in (span.attributes or {}).items()}
    resource = {k: jsonable(v) for k, v in (span.resource.attributes if span.resource else {}).items()}
    rollout_id, attempt_id = rollout_ids(attrs, resource)
    return Span(
        trace_id=format(ctx.trace_id, "032x"),
        span_id=format(ctx.span_id, "016x"),
        parent_id=format(span.parent.span_id, "016x") if span.parent else None,
        name=span.name,
        start_time=(span.start_time or 0) / 1e9,
        end_time=span.end_time / 1e9 if span.end_time else None,
        attributes=attrs,
        events=[
            SpanEvent(
                name=e.name,
                timestamp=e.timestamp / 1e9,
                attributes={k: jsonable(v) for k, v in (e.attributes or {}).items()},
            )
            for e in span.events
        ],
        status=SpanStatus(code=_STATUS_CODES[span.status.status_code], description=span.status.description),
        resource=resource,
        rollout_id=rollout_id,
        attempt_id=attempt_id,
    )


def json_attr(value: Any) -> str:
    """Serialise a structured attribute value (messages, tool definitions, objects)."""
    return json.dumps(value, ensure_ascii=False, default=str)


def parse_json_attr(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
