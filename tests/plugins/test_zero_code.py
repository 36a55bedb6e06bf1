"""Zero-code path: ``opentelemetry-instrument python agent.py`` sends an unchanged plain-openai
agent's spans over OTLP/HTTP into the collector, stamped with the rollout from the resource, and
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=agl_openai`` switches our instrumentor off."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agl_core.server.background import BackgroundCollector
from agl_core.store import LightningStore
from agl_core.tracing import semconv
from tests.fixtures.scripted_openai import ScriptedOpenAI

AGENT = '''
import os, openai
client = openai.OpenAI()
reply = client.chat.completions.create(model=os.environ["MODEL"], messages=[{"role": "user", "content": "hello"}])
print(reply.choices[0].message.content)
'''

# OpenInference's instrumentors are installed too and would register under the same command.
OTHERS = "openai,langchain"
# Our other plugins: loaded in the first test (they must not disturb each other), skipped in the
# second for speed.
OUR_OTHERS = "agl_langchain,agl_openai_agents,agl_autogen,agl_crewai,agl_agent_framework"


def run_agent(tmp_path: Path, collector: BackgroundCollector, server: ScriptedOpenAI, rollout_id: str, attempt_id: str, disabled: str) -> str:
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGL_"))}
    env.update(
        AGL_HOME=str(tmp_path / "home"),
        OPENAI_BASE_URL=server.base_url,
        OPENAI_API_KEY="k",
        MODEL="gpt-4o-mini",
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_RESOURCE_ATTRIBUTES=f"{semconv.AGL_ROLLOUT_ID}={rollout_id},{semconv.AGL_ATTEMPT_ID}={attempt_id}",
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=disabled,
        CREWAI_DISABLE_TELEMETRY="true",
        CREWAI_TRACING_ENABLED="false",
    )
    bindir = Path(sys.executable).parent
    proc = subprocess.run(
        [str(bindir / "opentelemetry-instrument"), sys.executable, str(script)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.fixture()
def collector_and_server():
    store = LightningStore("memory://")
    with BackgroundCollector(store) as collector, ScriptedOpenAI(lambda body: "hi from the model") as server:
        yield store, collector, server


def test_opentelemetry_instrument_sends_chat_spans_to_the_collector(tmp_path, collector_and_server):
    store, collector, server = collector_and_server
    rollout = store.start_rollout({"q": "hello"})
    out = run_agent(tmp_path, collector, server, rollout.rollout_id, rollout.attempt.attempt_id, OTHERS)
    assert out == "hi from the model"
    spans = store.query_spans(rollout.rollout_id)
    chats = [s for s in spans if s.attributes.get(semconv.GEN_AI_OPERATION_NAME) == semconv.OP_CHAT]
    assert len(chats) == len(server.chat_requests()) == 1
    (chat,) = chats
    assert chat.name == "chat gpt-4o-mini" and chat.attempt_id == rollout.attempt.attempt_id
    assert chat.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 4
    assert "hi from the model" in chat.attributes[semconv.GEN_AI_OUTPUT_MESSAGES]
    assert server.chat_requests()[0]["headers"]["traceparent"].split("-")[1:3] == [chat.trace_id, chat.span_id]


def test_disabled_instrumentation_emits_nothing(tmp_path, collector_and_server):
    store, collector, server = collector_and_server
    rollout = store.start_rollout({"q": "hello"})
    out = run_agent(tmp_path, collector, server, rollout.rollout_id, rollout.attempt.attempt_id, f"{OTHERS},{OUR_OTHERS},agl_openai")
    assert out == "hi from the model"
    assert store.query_spans(rollout.rollout_id) == []
    assert "traceparent" not in server.chat_requests()[0]["headers"]
