"""OpenTelemetry instrumentor for CrewAI 1.x.

CrewAI's event bus delivers events on its own handler threads, after the fact, so spans made from
events could not be the parents of the LLM calls. We therefore wrap the calls themselves, in the
thread that runs them:

* ``Crew.kickoff`` / ``Crew.akickoff`` → ``invoke_agent {crew name}``
* ``Task._execute_core`` / ``_aexecute_core`` → ``invoke_agent {task name}``
* ``Agent.execute_task`` / ``aexecute_task`` → ``invoke_agent {role}`` (the name selective
  optimization uses)
* ``AgentExecutor._execute_single_native_tool_call`` → ``execute_tool {name}`` with call id,
  arguments and result (the function-calling path CrewAI takes with OpenAI-compatible models).

``chat`` spans: CrewAI 1.x calls OpenAI-compatible models through its native provider, which
uses the ``openai`` SDK (LiteLLM is only a fallback and is not installed here), so the openai
plugin records exactly one ``chat`` span per request and CrewAI adds none: instrument both,
``agl.instrument(["openai", "crewai"])``. Work CrewAI hands to threads (async tasks, tool pools,
timeouts) keeps its context through `agl_core.tracing.context.enable_thread_propagation`.

CrewAI's own telemetry uses a private TracerProvider (and is off with
``CREWAI_DISABLE_TELEMETRY=true``); our spans go to the global one (or the ``tracer_provider``
given to ``instrument``), which ``agl.instrument()`` has connected to the store.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
from typing import Any, Callable, Collection

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from agl_core.tracing import genai
from agl_crewai import spans
from agl_crewai.package import _instruments

log = logging.getLogger("agentlightning")

Describe = Callable[[trace.Tracer, Any, tuple[Any, ...], dict[str, Any]], trace.Span]
OnResult = Callable[[Any], dict[str, Any]]

# (module, class, method, span description, attributes from the result)
_TARGETS: tuple[tuple[str, str, str, Describe, OnResult | None], ...] = (
    ("crewai.crew", "Crew", "kickoff", spans.crew_span, None),
    ("crewai.crew", "Crew", "akickoff", spans.crew_span, None),
    ("crewai.task", "Task", "_execute_core", spans.task_span, None),
    ("crewai.task", "Task", "_aexecute_core", spans.task_span, None),
    ("crewai.agent.core", "Agent", "execute_task", spans.agent_span, None),
    ("crewai.agent.core", "Agent", "aexecute_task", spans.agent_span, None),
    (
        "crewai.agents.agent_executor",
        "AgentExecutor",
        "_execute_single_native_tool_call",
        spans.native_tool_call_span,
        spans.native_tool_call_result,
    ),
)

_originals: dict[tuple[type, str], Any] = {}
_tracer: trace.Tracer = trace.NoOpTracer()


def _start(describe: Describe, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        return describe(_tracer, instance, args, kwargs)
    except Exception:
        log.debug("agl_crewai: could not start a span", exc_info=True)
        return None


def _record(span: Any, on_result: OnResult | None, result: Any) -> None:
    if on_result is None:
        return
    try:
        span.set_attributes(on_result(result))
    except Exception:
        log.debug("agl_crewai: could not record a result", exc_info=True)


def _traced(original: Any, describe: Describe, on_result: OnResult | None) -> Any:
    """`original` run inside a current span; a failure of ours never stops the call."""
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def async_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            span = _start(describe, self, args, kwargs)
            if span is None:
                return await original(self, *args, **kwargs)
            with genai.use_span(span):
                result = await original(self, *args, **kwargs)
                _record(span, on_result, result)
                return result

        return async_wrapper

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        span = _start(describe, self, args, kwargs)
        if span is None:
            return original(self, *args, **kwargs)
        with genai.use_span(span):
            result = original(self, *args, **kwargs)
            _record(span, on_result, result)
            return result

    return wrapper


class CrewAIInstrumentor(BaseInstrumentor):
    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        import crewai  # noqa: F401  ImportError: not installed, the only error we raise

        global _tracer
        try:
            _tracer = trace.get_tracer("agl_crewai", tracer_provider=kwargs.get("tracer_provider"))
            for module_name, class_name, method, describe, on_result in _TARGETS:
                cls = getattr(importlib.import_module(module_name), class_name, None)
                if cls is None or method not in cls.__dict__ or (cls, method) in _originals:
                    continue  # not in this CrewAI version, or done already
                original = cls.__dict__[method]
                _originals[(cls, method)] = original
                setattr(cls, method, _traced(original, describe, on_result))
        except Exception:
            log.exception("agl_crewai: instrumentation failed; CrewAI runs untouched")
            self._restore()

    def _uninstrument(self, **kwargs: Any) -> None:
        try:
            self._restore()
        except Exception:
            log.exception("agl_crewai: uninstrumentation failed")

    @staticmethod
    def _restore() -> None:
        while _originals:
            (cls, method), original = _originals.popitem()
            setattr(cls, method, original)
