"""`examples/openai_agents/agent.py` run as its README says, against a scripted OpenAI-compatible
endpoint: it answers, its spans are in the default store, and the SDK's own exporter (turned off by
the example) prints no ``[non-fatal] Tracing request failed``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agl_core.store import LightningStore
from tests.fixtures.scripted_openai import ScriptedOpenAI, tool_call

pytest.importorskip("agents")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "openai_agents"


def responder(body: dict) -> object:
    """The add tool for the question, then the sum the tool returned."""
    last = body["messages"][-1]
    if last["role"] == "tool":
        return f"17 + 25 = {last['content']}"
    return tool_call("add", a=17, b=25)


def test_example_answers_records_its_spans_and_prints_no_tracing_errors(tmp_path):
    with ScriptedOpenAI(responder) as server:
        env = {
            **os.environ, "AGL_HOME": str(tmp_path), "OPENAI_BASE_URL": server.base_url,
            "OPENAI_API_KEY": "not-an-openai-key", "MODEL": "tiny",
        }
        env.pop("AGL_STORAGE", None)
        done = subprocess.run(
            [sys.executable, "agent.py"], cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 0, done.stderr
    assert "Tracing request failed" not in done.stdout + done.stderr
    answer, rollout_line = done.stdout.strip().splitlines()[-2:]
    assert "42" in answer and rollout_line.startswith("rollout: ")
    store = LightningStore(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        names = {s.name for s in store.query_spans(rollout_line.removeprefix("rollout: "))}
    finally:
        store.close()
    assert {"invoke_agent calculator-session", "invoke_agent calculator", "chat tiny", "execute_tool add"} <= names
