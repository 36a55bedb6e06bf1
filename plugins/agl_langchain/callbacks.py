"""The LangChain callback handler that turns runs into GenAI spans.

Parenting follows LangChain's run ids, not the current OTel context, because callbacks may run on
other threads; only a run with no known parent takes the current context (e.g. the rollout's
``invoke_agent`` span of ``agl.tracer.trace``).

Which runs become spans:

- ``invoke_agent {name}``: a named LangGraph graph (``create_react_agent(..., name="writer")``,
  ``StateGraph(...).compile(name=...)``; the default name ``LangGraph`` does not count), each
  graph node (a graph added as a node takes the node's name: ``add_node("writer", agent)``) and
  classic ``AgentExecutor`` runs. The internal nodes of LangGraph's prebuilt agents (``agent``,
  ``tools``, ``model``, …) are steps of the agent around them, not agents, when they have one.
- ``chat {model}``: each chat-model (or LLM) run. This layer owns the chat span: while the model
  runs, its span is the current context and LLM spans are suppressed below it
  (:func:`agl_core.tracing.genai.chat_context`), so the openai plugin adds no second span but
  still puts this span in the request's ``traceparent``.
- ``execute_tool {name}``: each tool run.

Other chains get no span; their children hang on the nearest ancestor that has one.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Sequence
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage, convert_to_openai_messages
from opentelemetry import context as otel_context
from opentelemetry import trace

from agl_core.tracing import genai, semconv
from agl_core.tracing.convert import json_attr
from agl_core.tracing.messages import chat_request_attributes, openai_to_genai

log = logging.getLogger("agentlightning")

DEFAULT_GRAPH_NAME = "LangGraph"
_AGENT_RUNNABLES = frozenset({"AgentExecutor"})
#: Node names of LangGraph's prebuilt agents (create_react_agent, create_agent).
_PREBUILT_STEP_NODES = frozenset(
    {"agent", "tools", "model", "pre_model_hook", "post_model_hook", "generate_structured_response"}
)


@dataclass
class _Run:
    parent_ctx: otel_context.Context  # where children without a span of their own attach
    span: trace.Span | None = None
    is_agent: bool = False
    in_agent: bool = False  # this run or an ancestor is an agent
    token: contextvars.Token[otel_context.Context] | None = None  # a chat run made current while the model runs


def _is_graph_node(name: str | None, metadata: dict[str, Any], tags: Sequence[str]) -> bool:
    return bool(name) and metadata.get("langgraph_node") == name and any(t.startswith("graph:step:") for t in tags)


def _is_root_graph(metadata: dict[str, Any]) -> bool:
    return metadata.get("ls_integration") == "langgraph" and "langgraph_node" not in metadata


def _openai_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    return list(convert_to_openai_messages(list(messages)))


class AglCallbackHandler(BaseCallbackHandler):
    """Spans for agent, chat-model and tool runs; see the module docstring for the rules."""

    run_inline = True  # called in the caller's context, so a chat run can be made current

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer
        self._runs: dict[UUID, _Run] = {}
        self._lock = threading.Lock()

    # --- bookkeeping ---------------------------------------------------------------------------
    def _parent(self, parent_run_id: UUID | None) -> tuple[_Run | None, otel_context.Context]:
        with self._lock:
            parent = self._runs.get(parent_run_id) if parent_run_id else None
        if parent is None:
            return None, otel_context.get_current()
        return parent, trace.set_span_in_context(parent.span) if parent.span else parent.parent_ctx

    def _open(self, run_id: UUID, parent_run_id: UUID | None, start: Callable[..., trace.Span] | None = None, is_agent: bool = False, **describe: Any) -> _Run:
        """Book the run; `start` (a ``genai.start_*_span``) opens its span, given `describe`."""
        parent, ctx = self._parent(parent_run_id)
        run = _Run(parent_ctx=ctx, is_agent=is_agent, in_agent=is_agent or (parent is not None and parent.in_agent))
        if start is not None:
            run.span = start(context=ctx, tracer=self.tracer, **describe)
        with self._lock:
            self._runs[run_id] = run
        return run

    def _close(self, run_id: UUID, attrs: dict[str, Any] | None = None, error: BaseException | None = None) -> None:
        with self._lock:
            run = self._runs.pop(run_id, None)
        if run is None:
            return
        if run.token is not None:
            otel_context.detach(run.token)
        if run.span is None:
            return
        try:
            if error is not None:
                genai.fail(run.span, error)
            elif attrs:
                run.span.set_attributes(attrs)
        finally:
            run.span.end()

    # --- chains and agents ---------------------------------------------------------------------
    def on_chain_start(self, serialized: dict[str, Any] | None, inputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None, tags: list[str] | None = None, metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        metadata, tags = metadata or {}, tags or []
        name = kwargs.get("name") or (serialized or {}).get("name")
        parent, _ = self._parent(parent_run_id)
        if _is_root_graph(metadata):
            agent = name != DEFAULT_GRAPH_NAME
        elif _is_graph_node(name, metadata, tags):
            agent = name not in _PREBUILT_STEP_NODES or parent is None or not parent.in_agent
        else:
            agent = name in _AGENT_RUNNABLES
        if agent:
            self._open(run_id, parent_run_id, genai.start_agent_span, is_agent=True, name=str(name))
        else:
            self._open(run_id, parent_run_id)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._close(run_id)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._close(run_id, error=error)

    # --- models --------------------------------------------------------------------------------
    def _start_model(self, run_id: UUID, parent_run_id: UUID | None, messages: list[dict[str, Any]], metadata: dict[str, Any] | None, kwargs: dict[str, Any]) -> None:
        params = kwargs.get("invocation_params") or {}
        metadata = metadata or {}
        model = params.get("model") or params.get("model_name") or metadata.get("ls_model_name")
        attrs = chat_request_attributes(model, messages, params.get("tools"), provider=metadata.get("ls_provider") or "langchain")
        if metadata.get("ls_structured_output_format") or params.get("response_format"):
            attrs[semconv.GEN_AI_OUTPUT_TYPE] = "json"
        for key, attr in (("temperature", semconv.GEN_AI_REQUEST_TEMPERATURE), ("max_tokens", semconv.GEN_AI_REQUEST_MAX_TOKENS)):
            if isinstance(params.get(key), (int, float)):
                attrs[attr] = params[key]
        run = self._open(run_id, parent_run_id, genai.start_chat_span, model=model, attributes=attrs)
        if kwargs.get("batch_size", 1) == 1 and run.span is not None:
            # One prompt: make the span current so the client below nests under it and stays quiet.
            run.token = otel_context.attach(genai.chat_context(run.span))

    def on_chat_model_start(self, serialized: dict[str, Any], messages: list[list[BaseMessage]], *, run_id: UUID, parent_run_id: UUID | None = None, metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self._start_model(run_id, parent_run_id, _openai_messages(messages[0]), metadata, kwargs)

    def on_llm_start(self, serialized: dict[str, Any], prompts: list[str], *, run_id: UUID, parent_run_id: UUID | None = None, metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self._start_model(run_id, parent_run_id, [{"role": "user", "content": prompts[0]}], metadata, kwargs)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            attrs = _response_attributes(response)
        except Exception:
            log.debug("could not describe a LangChain model response", exc_info=True)
            attrs = {}
        self._close(run_id, attrs)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._close(run_id, error=error)

    # --- tools ---------------------------------------------------------------------------------
    def on_tool_start(self, serialized: dict[str, Any], input_str: str, *, run_id: UUID, parent_run_id: UUID | None = None, inputs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        name = (serialized or {}).get("name") or kwargs.get("name") or "tool"
        arguments = inputs if inputs is not None else str(input_str)
        self._open(run_id, parent_run_id, genai.start_tool_span, name=name, arguments=arguments, call_id=kwargs.get("tool_call_id"))

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._close(run_id, genai.tool_result_attributes(getattr(output, "content", output)))

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._close(run_id, error=error)


def _response_attributes(response: Any) -> dict[str, Any]:
    """Output messages, finish reasons, usage and response model of an `LLMResult`."""
    generations = response.generations[0] if response.generations else []
    outputs, reasons = [], []
    usage: dict[str, int] = {}
    response_model = None
    for generation in generations:
        message = getattr(generation, "message", None)
        if message is not None:
            out, _ = openai_to_genai(_openai_messages([message]))
            metadata = getattr(message, "response_metadata", None) or {}
            for key, value in (getattr(message, "usage_metadata", None) or {}).items():
                if key in ("input_tokens", "output_tokens"):
                    usage[key] = usage.get(key, 0) + int(value)
            response_model = response_model or metadata.get("model_name")
        else:
            out, metadata = [{"role": "assistant", "parts": [{"type": "text", "content": generation.text}]}], {}
        reason = metadata.get("finish_reason") or (generation.generation_info or {}).get("finish_reason")
        if reason:
            reasons.append(str(reason))
            for msg in out:
                msg["finish_reason"] = str(reason)
        outputs.extend(out)
    if not usage:
        token_usage = (response.llm_output or {}).get("token_usage") or {}
        if "prompt_tokens" in token_usage:
            usage = {"input_tokens": token_usage["prompt_tokens"], "output_tokens": token_usage.get("completion_tokens", 0)}
    attrs: dict[str, Any] = {semconv.GEN_AI_OUTPUT_MESSAGES: json_attr(outputs)}
    if reasons:
        attrs[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
    if response_model:
        attrs[semconv.GEN_AI_RESPONSE_MODEL] = response_model
    if "input_tokens" in usage:
        attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS] = usage["input_tokens"]
    if "output_tokens" in usage:
        attrs[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] = usage["output_tokens"]
    return attrs
