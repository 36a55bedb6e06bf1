"""The first trace instruments the installed frameworks: an unchanged agent inside
``agl.tracer.trace`` has its LLM calls recorded with no other line (each test a fresh process,
as instrumentation is process-wide)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.fixtures.scripted_openai import ScriptedOpenAI

pytest.importorskip("openai")

#: Runs an unchanged plain-openai agent inside the tracer; prints the rollout's span names.
PLAIN_OPENAI = """
import json, openai
import agentlightning as agl

def my_agent(question):
    client = openai.OpenAI()
    reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": question}])
    return reply.choices[0].message.content

with agl.tracer.trace("my-agent", {"question": "2+2?"}):
    answer = my_agent("2+2?")
agl.flush()
store = agl.LightningStore()
rollout = store.query_rollouts()[-1]
print(json.dumps([s.name for s in store.query_spans(rollout.rollout_id)]))
"""

#: LangChain imported only after the first trace: it is instrumented at its import.
LATE_LANGCHAIN = """
import json
import agentlightning as agl

with agl.tracer.trace("warm-up"):
    pass
from langchain_openai import ChatOpenAI

with agl.tracer.trace("my-agent"):
    ChatOpenAI(model="m").invoke("2+2?")
agl.flush()
store = agl.LightningStore()
rollout = store.query_rollouts()[-1]
print(json.dumps([s.name for s in store.query_spans(rollout.rollout_id)]))
"""


def _run(script: str, tmp_path: Path, server: ScriptedOpenAI, **env: str) -> list[str]:
    path = tmp_path / "agent.py"
    path.write_text(textwrap.dedent(script))
    full_env = {
        **os.environ,
        "AGL_HOME": str(tmp_path / "home"),
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": "test-key",
        "AGL_AUTO_INSTRUMENT": "true",
        **env,
    }
    result = subprocess.run([sys.executable, str(path)], env=full_env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture()
def server():
    with ScriptedOpenAI(lambda request: "4") as server:
        yield server


def test_the_tracer_records_an_unchanged_openai_agents_llm_call(tmp_path: Path, server: ScriptedOpenAI) -> None:
    names = _run(PLAIN_OPENAI, tmp_path, server)
    assert sorted(names) == ["chat m", "invoke_agent my-agent"]
    assert len(server.requests) == 1


def test_auto_instrumentation_can_be_switched_off(tmp_path: Path, server: ScriptedOpenAI) -> None:
    names = _run(PLAIN_OPENAI, tmp_path, server, AGL_AUTO_INSTRUMENT="false")
    assert names == ["invoke_agent my-agent"]


def test_a_framework_imported_after_the_first_trace_is_instrumented_at_its_import(
    tmp_path: Path, server: ScriptedOpenAI
) -> None:
    pytest.importorskip("langchain_openai")
    names = _run(LATE_LANGCHAIN, tmp_path, server)
    assert names.count("chat m") == 1  # LangChain's layer owns the request; openai's records nothing more
    assert "invoke_agent my-agent" in names


def test_a_users_own_choice_of_instrumentation_is_kept(tmp_path: Path, server: ScriptedOpenAI) -> None:
    chosen = PLAIN_OPENAI.replace("with agl.tracer.trace(", "agl.uninstrument()\nwith agl.tracer.trace(", 1)
    assert _run(chosen, tmp_path, server) == ["invoke_agent my-agent"]
