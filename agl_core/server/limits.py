"""What one request to the store server may hold (see SECURITY.md): bodies, JSON nesting, spans
per request and the size of one attribute value, and how many exports it takes at once. Beyond a
size limit the answer is 413, beyond the exports at once 429; a body nested too deeply is 400.
Both receivers (OTLP/HTTP, the store API) apply the same size limits."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Iterable

from starlette.requests import Request

from agl_core.types import Span

#: Largest request body, compressed or decompressed (bytes).
MAX_BODY_BYTES = 32 * 1024 * 1024
#: Deepest JSON nesting accepted (an OTLP span with a flat attribute is about 10 deep).
MAX_JSON_DEPTH = 64
#: Most spans one request may carry (OpenTelemetry's batch exporter sends 512 at a time).
MAX_SPANS_PER_REQUEST = 10_000
#: Largest attribute value of one span: a string's characters, or an array's summed over its items.
MAX_ATTRIBUTE_CHARS = 4 * 1024 * 1024
#: Longest wait for a request's body once its headers have arrived; a client that stalls mid-body
#: (slowloris) gets 408 instead of holding a connection and its buffer forever.
BODY_TIMEOUT_S = 30.0
#: OTLP exports read or stored at once; more are answered 429 (exporters retry it with backoff), so
#: a thousand exporters at once cannot hold a thousand bodies in memory.
MAX_CONCURRENT_EXPORTS = 64


class LimitError(ValueError):
    """A request refused; ``status`` is what to answer (413 beyond a size, 400 for nesting, 408 for a
    body that stopped arriving)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def read_body(request: Request, max_bytes: int = MAX_BODY_BYTES) -> bytes:
    """The request's body, or `LimitError` 413 as soon as it is over `max_bytes` (declared or sent),
    408 when it has not all arrived within `BODY_TIMEOUT_S`."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise LimitError(413, f"body of {declared} bytes is over the {max_bytes}-byte limit")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    raise LimitError(413, f"body is over the {max_bytes}-byte limit")
                chunks.append(chunk)
    except TimeoutError:
        raise LimitError(408, f"the request body did not arrive within {BODY_TIMEOUT_S:g} s") from None
    return b"".join(chunks)


def parse_json(body: bytes | str) -> Any:
    """``json.loads`` that refuses nesting deeper than `MAX_JSON_DEPTH` with a `LimitError`
    (instead of a RecursionError from deep inside the parser or whoever walks the result)."""
    try:
        value = json.loads(body)
    except RecursionError:
        raise LimitError(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    check_depth(value)
    return value


def check_depth(value: Any) -> None:
    """`LimitError` 400 when `value` (parsed JSON) nests deeper than `MAX_JSON_DEPTH`; iterative."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > MAX_JSON_DEPTH:
            raise LimitError(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children)


def _chars(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (list, tuple)):
        return sum(_chars(v) for v in value)
    if isinstance(value, dict):
        return sum(len(k) + _chars(v) for k, v in value.items())
    return 8  # a number or a boolean


def check_span_count(count: int) -> None:
    if count > MAX_SPANS_PER_REQUEST:
        raise LimitError(413, f"{count} spans in one request; at most {MAX_SPANS_PER_REQUEST}")


def check_attributes(spans: Iterable[Span]) -> None:
    """`LimitError` 413 when an attribute value of a span or of one of its events is over
    `MAX_ATTRIBUTE_CHARS`."""
    for span in spans:
        for attributes in (span.attributes, *(event.attributes for event in span.events)):
            for key, value in attributes.items():
                size = _chars(value)
                if size > MAX_ATTRIBUTE_CHARS:
                    raise LimitError(
                        413,
                        f"attribute {key[:100]!r} of span {span.name[:100]!r} holds {size} characters;"
                        f" at most {MAX_ATTRIBUTE_CHARS}",
                    )
