"""Per-LLM-call overhead of Agent Lightning's instrumentation against OpenInference's, same run.

Every configuration makes the same chat-completion calls against the scripted OpenAI-compatible
server on 127.0.0.1 (served from another thread); spans go to one in-memory exporter through a
synchronous processor, so the cost of recording them is counted. The time measured is the CPU
time of the calling thread (``time.thread_time``): it holds the client and its instrumentation
but not the server or the wait for it, whose noise (~±200 us per loopback call) would swamp the
difference. Overhead = CPU per call minus the uninstrumented CPU per call; the floor is one
manual OTel SDK span per call. Rounds are interleaved and the median round is kept.

    python benchmarks/tracing_overhead.py [--calls 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import openai  # noqa: E402
from langchain_openai import ChatOpenAI  # noqa: E402
from openinference.instrumentation.langchain import LangChainInstrumentor as OILangChain  # noqa: E402
from openinference.instrumentation.openai import OpenAIInstrumentor as OIOpenAI  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from agl_langchain.instrumentor import LangChainInstrumentor  # noqa: E402
from agl_openai.instrumentor import OpenAIInstrumentor  # noqa: E402
from tests.fixtures.scripted_openai import ScriptedOpenAI  # noqa: E402

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}]


class Setup:
    """Turns one configuration on and off around its timed calls."""

    def __init__(self, name: str, layer: str, on: Callable[[], None] = lambda: None, off: Callable[[], None] = lambda: None, manual_span: bool = False) -> None:
        self.name, self.layer, self.on, self.off, self.manual_span = name, layer, on, off, manual_span
        self.rounds: list[float] = []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("benchmark")

    def both(*instrumentors: Any) -> tuple[Callable[[], None], Callable[[], None]]:
        return (
            lambda: [i().instrument(tracer_provider=provider, skip_dep_check=True) for i in instrumentors],
            lambda: [i().uninstrument() for i in instrumentors],
        )

    setups = [
        Setup("openai: none", "openai"),
        Setup("openai: bare OTel span (floor)", "openai", manual_span=True),
        Setup("openai: agentlightning", "openai", *both(OpenAIInstrumentor)),
        Setup("openai: openinference", "openai", *both(OIOpenAI)),
        Setup("langchain: none", "langchain"),
        Setup("langchain: bare OTel span (floor)", "langchain", manual_span=True),
        Setup("langchain: agentlightning (+openai)", "langchain", *both(LangChainInstrumentor, OpenAIInstrumentor)),
        Setup("langchain: openinference (+openai)", "langchain", *both(OILangChain, OIOpenAI)),
    ]

    with ScriptedOpenAI(lambda body: "Hello there.") as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        chat = ChatOpenAI(model="gpt-4o-mini", base_url=server.base_url, api_key="k", max_retries=0)
        calls = {
            "openai": lambda: client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES),
            "langchain": lambda: chat.invoke(MESSAGES),
        }
        for call in calls.values():  # warm up connections and imports
            for _ in range(20):
                call()
        for _ in range(args.rounds):
            for setup in setups:
                setup.on()
                call = calls[setup.layer]
                start = time.thread_time()
                for _ in range(args.calls):
                    if setup.manual_span:
                        with tracer.start_as_current_span("chat"):
                            call()
                    else:
                        call()
                setup.rounds.append((time.thread_time() - start) / args.calls * 1e6)
                setup.off()
                exporter.clear()

    per_call = {s.name: statistics.median(s.rounds) for s in setups}
    print(f"{args.calls} calls x {args.rounds} rounds per configuration (median round), scripted server on 127.0.0.1\n")
    print(f"{'configuration':40s} {'cpu us/call':>12s} {'overhead us':>12s}")
    for layer in calls:
        base = per_call[f"{layer}: none"]
        for setup in (s for s in setups if s.layer == layer):
            print(f"{setup.name:40s} {per_call[setup.name]:12.1f} {per_call[setup.name] - base:12.1f}")
        ours = per_call[next(s.name for s in setups if s.layer == layer and "agentlightning" in s.name)] - base
        theirs = per_call[next(s.name for s in setups if s.layer == layer and "openinference" in s.name)] - base
        floor = per_call[f"{layer}: bare OTel span (floor)"] - base
        ratio = ours / theirs if theirs > 0 else float("nan")
        print(f"  {layer}: overhead ours/openinference = {ratio:.2f}; floor (bare span) = {floor:.1f} us\n")


if __name__ == "__main__":
    main()
