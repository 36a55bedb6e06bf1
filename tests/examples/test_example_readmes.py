"""Every example README's offline command runs as written, from the repo root, and prints what the
README says.

Each ``examples/<name>/README.md`` (but ``demo`` and ``sql_agent``, tested on their own) has a
"Run it offline, from the repo root" section whose first ``bash`` block is run literally with bash:
it starts ``agent-lightning serve --model tiny`` (or, for APO, the scripted stand-in), waits for
it, runs the example and stops the server. No network is used (``HF_HUB_OFFLINE=1``); the spans go
to the default store under a fresh ``AGL_HOME``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from agl_core.store import LightningStore
from agl_core.tracing import semconv

ROOT = Path(__file__).resolve().parents[2]
OWN_TESTS = {"demo", "sql_agent"}  # tests/examples/test_demo.py, test_sql_agent.py
EXAMPLES = sorted(p.parent.name for p in (ROOT / "examples").glob("*/README.md") if p.parent.name not in OWN_TESTS)
HEADING = "## Run it offline, from the repo root"
#: The module each example needs besides the core (skipped where it is not installed).
NEEDS = {
    "openai": "openai",
    "openai_agents": "agents",
    "langchain": "langgraph",
    "crewai": "crewai",
    "autogen": "autogen_agentchat",
    "agent_framework": "agent_framework",
    "apo_room_selector": "openai",
}


def offline_block(name: str) -> str:
    text = (ROOT / "examples" / name / "README.md").read_text()
    assert HEADING in text, f"examples/{name}/README.md has no {HEADING!r} section"
    match = re.search(r"```bash\n(.*?)```", text[text.index(HEADING) :], re.S)
    assert match, f"examples/{name}/README.md: no bash block under {HEADING!r}"
    return match.group(1)


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def run_block(block: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "AGL_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    for name in ("AGL_STORAGE", "OPENAI_BASE_URL", "OPENAI_API_KEY", "MODEL"):
        env.pop(name, None)
    proc = subprocess.Popen(
        ["bash", "-c", block], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        stop_group(proc.pid)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def stop_group(pgid: int, grace_s: float = 20.0) -> None:
    """Stop what the block left behind and wait for it: bash does not wait for the server its
    ``kill %1`` stopped, and the server writes its last spans to the store as it exits."""
    try:
        os.killpg(pgid, signal.SIGTERM)  # again, for a block that failed before its `kill %1`
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            time.sleep(0.2)
            os.killpg(pgid, 0)
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:  # every process of the group has exited
        pass


@pytest.fixture(scope="module")
def tiny_model() -> None:
    """The tiny model built before the first block (a fresh clone builds it once, then it is cached)."""
    pytest.importorskip("torch")
    from agl_trl.tiny_model import build_tiny_model

    build_tiny_model()


def check_traced_run(name: str, result: subprocess.CompletedProcess, home: Path) -> None:
    """The example printed its answer and the rollout line; the rollout went through serve."""
    lines = result.stdout.strip().splitlines()
    assert len(lines) >= 2, result.stdout
    match = re.match(r"rollout:? (ro-[0-9a-f]+)", lines[-1])
    assert match, f"examples/{name}: the last line is not the rollout line: {lines[-1]!r}"
    store = LightningStore(f"sqlite:///{home / 'store.db'}")
    try:
        spans = store.query_spans(match.group(1))
    finally:
        store.close()
    names = {s.name for s in spans}
    assert any(n.startswith("invoke_agent ") for n in names) and "agl.reward" in names, names
    served = [s for s in spans if s.name.startswith("chat ") and s.attributes.get(semconv.GEN_AI_PROVIDER_NAME) == "agentlightning"]
    assert served, f"no chat span from serve in {sorted(names)}"  # the requests went to the tiny model


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_readme_command_runs_offline_from_the_repo_root(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    block = offline_block(name)
    if not (ROOT / ".venv" / "bin" / "python").is_file():
        pytest.skip("the README commands call .venv/bin/…: run `make demo` (or scripts/setup.sh) first")
    if importlib.util.find_spec(NEEDS.get(name, "openai")) is None:
        pytest.skip(f"examples/{name} needs {NEEDS[name]}")
    uses_tiny = "serve --model tiny" in block
    if uses_tiny:
        request.getfixturevalue("tiny_model")
    for port in re.findall(r"--port (\d+)", block):
        assert port_is_free(int(port)), f"port {port} of examples/{name}/README.md is taken on this machine"
    result = run_block(block, tmp_path / "home")
    assert result.returncode == 0, f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    if name == "apo_room_selector":
        summary = json.loads(result.stdout[result.stdout.index("{") :])
        assert (summary["seed_score"], summary["best_score"]) == (0.25, 1.0)  # as the README says
    else:
        assert uses_tiny, f"examples/{name}/README.md: the offline command should start serve --model tiny"
        check_traced_run(name, result, tmp_path / "home")
