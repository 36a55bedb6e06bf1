"""The SQL agent example on the built-in ``sql-generation`` set: tools, traces and the execution-match reward, on a scripted model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import agentlightning as agl
from agl_core.runtime.runner import Runner
from agl_core.tracing import semconv
from examples.sql_agent.agent import sql_agent
from tests.fixtures.scripted_openai import ScriptedOpenAI, tool_call


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def scripted_sql_model(wrong: set[str]):
    """Schema first, then the gold SQL (or a wrong one for questions in `wrong`), then that query as the reply."""
    gold = {t.input["question"]: t.input["answer"] for split in ("train", "eval") for t in agl.load_tasks("sql-generation", split, n=1000)}

    def respond(body: dict) -> object:
        question = next(m["content"] for m in body["messages"] if m["role"] == "user")
        tool_results = [m for m in body["messages"] if m["role"] == "tool"]
        if not tool_results:
            return tool_call("query_schema")
        sql = "SELECT 1" if question in wrong else gold[question]
        if len(tool_results) == 1:
            return tool_call("execute_sql", query=sql)
        json.loads(tool_results[-1]["content"])  # the tool answered with rows, not an error
        return f"This query answers it:\n```sql\n{sql}\n```"

    return respond


def test_sql_agent_rewards_execution_match_and_traces_tools() -> None:
    store = agl.LightningStore("memory://")
    agl.configure(store)
    tasks = [t.input for t in agl.load_tasks("sql-generation", "train", n=4)]
    with ScriptedOpenAI(scripted_sql_model(wrong={tasks[1]["question"]})) as server:
        res = store.add_resources({"llm": agl.LLMEndpoint(endpoint=server.base_url, model="sql-model")})
        store.enqueue_rollouts([agl.RolloutRequest(input=t, resources_id=res.resources_id) for t in tasks])
        Runner(sql_agent(), store).run()
        assert len(server.chat_requests()) == 3 * len(tasks)
    rewards = {r.input["question"]: r.final_reward for r in store.query_rollouts()}
    assert rewards == {t["question"]: (0.0 if t is tasks[1] else 1.0) for t in tasks}
    rollout = store.query_rollouts()[0]
    spans = store.query_spans(rollout.rollout_id)
    tools = [s.attributes[semconv.GEN_AI_TOOL_NAME] for s in spans if s.name.startswith("execute_tool")]
    assert tools == ["query_schema", "execute_sql"]
    triplets = agl.rollout_triplets(store, rollout, agents=["sql-agent"])
    assert len(triplets) == 3 and all(t.reward == rollout.final_reward for t in triplets)
    assert triplets[0].tools and {t["function"]["name"] for t in triplets[0].tools} == {"query_schema", "execute_sql"}


def _run_example(*args: str, home: Path) -> str:
    env = {**os.environ, "AGL_HOME": str(home), "XDG_CACHE_HOME": str(home / "cache")}
    result = subprocess.run([sys.executable, "-m", "examples.sql_agent", *args], env=env, capture_output=True,
                            text=True, timeout=600, cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_example_evaluates_any_endpoint_on_the_heldout_split(tmp_path: Path) -> None:
    with ScriptedOpenAI(scripted_sql_model(wrong=set())) as server:
        out = _run_example("--endpoint", server.base_url, "--model", "sql-model", "--heldout", "12", home=tmp_path)
    assert "held-out execution accuracy: 1.000 (n=12)" in out


def test_example_trains_end_to_end_on_the_tiny_model(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    out = _run_example("--steps", "1", "--heldout", "4", home=tmp_path)
    assert "held-out execution accuracy (greedy):" in out
    assert f"run folder: {tmp_path / 'runs' / 'sql-agent-grpo'}" in out  # under AGL_HOME, no temporary folder
