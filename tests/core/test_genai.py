"""The span SDK (agl_core.tracing.genai) on a real OTel SDK provider with an in-memory exporter."""

from __future__ import annotations

import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from agl_core.tracing import genai, semconv


@pytest.fixture
def recorded():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test"), exporter


def test_agent_span_is_named_described_and_fails_with_the_body(recorded) -> None:
    tracer, exporter = recorded
    with genai.agent_span("writer", input={"q": 1}, tracer=tracer) as span:
        assert trace.get_current_span() is span
    with pytest.raises(ValueError):
        with genai.agent_span("writer", tracer=tracer):
            raise ValueError("bad task")
    ok, failed = exporter.get_finished_spans()
    assert ok.name == "invoke_agent writer" and ok.status.status_code is StatusCode.UNSET
    assert ok.attributes[semconv.GEN_AI_OPERATION_NAME] == semconv.OP_INVOKE_AGENT
    assert ok.attributes[semconv.GEN_AI_AGENT_NAME] == "writer"
    assert ok.attributes[semconv.AGL_ROLLOUT_INPUT] == '{"q": 1}'
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "ValueError: bad task"
    assert [e.name for e in failed.events] == ["exception"]


def test_outermost_chat_span_owns_the_request(recorded) -> None:
    tracer, exporter = recorded
    with genai.chat_span("gpt-x", tracer=tracer) as outer:
        assert outer is not None and genai.llm_span_suppressed()
        with genai.chat_span("gpt-x", tracer=tracer) as inner:
            assert inner is None
    assert not genai.llm_span_suppressed()
    [chat] = exporter.get_finished_spans()
    assert chat.name == "chat gpt-x" and chat.kind is SpanKind.CLIENT
    assert chat.attributes[semconv.GEN_AI_REQUEST_MODEL] == "gpt-x"


def test_started_chat_span_stays_open_until_its_owner_ends_it(recorded) -> None:
    tracer, exporter = recorded
    span = genai.start_chat_span("m", kind=SpanKind.SERVER, attributes={semconv.GEN_AI_PROVIDER_NAME: "p"}, tracer=tracer)
    with genai.use_chat_span(span):
        with genai.chat_span("m", tracer=tracer) as inner:
            assert inner is None
    assert exporter.get_finished_spans() == ()
    genai.fail(span, "upstream: 500")
    span.end()
    [chat] = exporter.get_finished_spans()
    assert chat.kind is SpanKind.SERVER and chat.attributes[semconv.GEN_AI_PROVIDER_NAME] == "p"
    assert chat.status.description == "upstream: 500" and not chat.events


def test_a_failing_request_ends_its_chat_span(recorded) -> None:
    tracer, exporter = recorded
    span = genai.start_chat_span("m", tracer=tracer)
    with pytest.raises(ConnectionError):
        with genai.use_chat_span(span):
            raise ConnectionError("refused")
    [chat] = exporter.get_finished_spans()
    assert chat.status.description == "ConnectionError: refused"


def test_tool_span_records_call_and_result(recorded) -> None:
    tracer, exporter = recorded
    with genai.tool_span("add", arguments={"a": 2}, call_id="c1", tracer=tracer) as span:
        genai.record_tool_result(span, 5)
    [tool] = exporter.get_finished_spans()
    assert tool.name == "execute_tool add"
    assert tool.attributes[semconv.GEN_AI_TOOL_CALL_ARGUMENTS] == '{"a": 2}'
    assert tool.attributes[semconv.GEN_AI_TOOL_CALL_ID] == "c1"
    assert tool.attributes[semconv.GEN_AI_TOOL_CALL_RESULT] == "5"


def test_inject_headers_carries_the_current_span_and_rollout_baggage(recorded) -> None:
    tracer, _ = recorded
    token = otel_context.attach(baggage.set_baggage(semconv.AGL_ROLLOUT_ID, "ro-1"))
    try:
        with genai.agent_span("a", tracer=tracer) as span:
            headers = genai.inject_headers({"x-mine": "1", "baggage": "mine=1"})
            plain = genai.inject_headers()
    finally:
        otel_context.detach(token)
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert trace_id in plain["traceparent"] and "agl.rollout.id=ro-1" in plain["baggage"]
    assert headers["x-mine"] == "1" and headers["baggage"] == "mine=1"  # the caller's headers win
