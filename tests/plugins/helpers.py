"""Responders, span lookups and failure stand-ins shared by the plugin tests."""

from __future__ import annotations

import json

from agl_core.tracing import semconv
from tests.fixtures.scripted_openai import tool_call


def calculator_responder(body: dict) -> object:
    """First call asks for the add tool, the call after the tool result answers."""
    if any(m["role"] == "tool" for m in body["messages"]):
        return "2 + 3 = 5"
    return tool_call("add", a=2, b=3)


def team_responder(body: dict) -> str:
    """A writer (its system message names it) drafts, anyone else reviews."""
    system = body["messages"][0]["content"]
    return "DRAFT: a haiku about tests" if "writer" in system else "REVIEW: looks fine"


def by_op(spans, op):
    """The spans of one ``gen_ai.operation.name``, oldest first."""
    return sorted((s for s in spans if s.attributes.get(semconv.GEN_AI_OPERATION_NAME) == op), key=lambda s: s.start_time)


def assert_add_tool_call(span, call_id: str | None) -> None:
    """`span` records the calculator's ``add(2, 3)`` call: its id (when the framework keeps one), arguments and result."""
    if call_id is not None:
        assert span.attributes[semconv.GEN_AI_TOOL_CALL_ID] == call_id
    assert json.loads(span.attributes[semconv.GEN_AI_TOOL_CALL_ARGUMENTS]) == {"a": 2, "b": 3}
    assert span.attributes[semconv.GEN_AI_TOOL_CALL_RESULT] == "5"


def broken(*args, **kwargs):
    raise RuntimeError("boom")


class BrokenProvider:
    """A tracer provider whose every call fails: instrumenting with it must not raise."""

    def add_span_processor(self, processor):
        raise RuntimeError("boom")

    def get_tracer(self, *args, **kwargs):
        raise RuntimeError("boom")
