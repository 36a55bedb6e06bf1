"""Every code block of ``../shared/PRODUCT_CARD.md`` runs as written (issue 11).

The blocks are read from the card, never copied. Each runs in a fresh process under a fresh
``AGL_HOME`` with only its free names defined (`model`, `messages`, `your_agent`, …), against a
scripted OpenAI server on 127.0.0.1 or the tiny model. What the card leaves unbounded is bounded
here, and only from outside the block: the config.yaml runs with ``--set`` overrides on the card's
own ``train`` command line; the SQL snippet (``episodes=500``) and the Python API block (default
episodes) run until their held-out evaluation has scored rollouts, then are stopped. The card's
``pip install`` block is skipped (no network here; this checkout is the installed package); its
``AGL_STORAGE=s3://…`` block runs in bash against an S3-compatible server (moto) on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

import pytest

from agl_core.store import LightningStore
from agl_core.tracing import semconv
from agl_core.types import Rollout
from tests.fixtures.scripted_openai import ScriptedOpenAI, free_port, tool_call

ROOT = Path(__file__).resolve().parents[2]
CARD = ROOT.parent / "shared" / "PRODUCT_CARD.md"
FINISHED = ("succeeded", "failed")
#: How each block is recognised (its language and a line it holds): a block the card gains fails the test.
MARKERS = {
    "install": ("bash", "pip install agentlightning"),
    "emit": ("python", "agl.emit_tool_call("),
    "tracer": ("python", "with tracer.trace("),
    "config": ("yaml", "eval_tasks:"),
    "train": ("bash", "agent-lightning train --config"),
    "sql": ("python", "trainer.train(sql_agent"),
    "env": ("bash", "AGL_STORAGE="),
    "python-api": ("python", "store = LightningStore()"),
    "watch": ("bash", "agent-lightning dashboard"),
}


def card_blocks() -> list[tuple[str, str]]:
    if not CARD.is_file():
        pytest.skip(f"{CARD} is absent (it lives beside the repo in the project's workspace, not in a clone)")
    return re.findall(r"^```(\w+)\n(.*?)^```", CARD.read_text(), re.S | re.M)


def block(name: str) -> str:
    lang, marker = MARKERS[name]
    found = [code for code_lang, code in card_blocks() if code_lang == lang and marker in code]
    assert len(found) == 1, f"the card holds {len(found)} {lang} blocks with {marker!r}"
    return found[0]


def test_every_block_of_the_card_is_covered() -> None:
    names = [[n for n, (lang, marker) in MARKERS.items() if lang == code_lang and marker in code] for code_lang, code in card_blocks()]
    assert all(len(n) == 1 for n in names), names
    assert sorted(n[0] for n in names) == sorted(MARKERS)


def test_install_block_is_skipped_offline() -> None:
    assert block("install").strip() == "pip install agentlightning"
    pytest.skip("pip install needs the network; this checkout is the installed package")


def test_env_block_sends_a_cli_run_to_the_bucket(tmp_path: Path) -> None:
    """The block, verbatim in bash, then a one-step ``agent-lightning train`` in the same shell, against
    a moto S3 server on 127.0.0.1 holding the card's bucket: the run folder lands under its prefix."""
    pytest.importorskip("torch")
    pytest.importorskip("s3fs", reason="needs agentlightning[s3] (s3fs)")
    import boto3

    from tests.trainers.moto_s3 import aws_env, moto_endpoint
    from tests.trainers.rl_fixtures import save_policy

    policy = save_policy(tmp_path / "policy")  # a small model saved in seconds; the bucket is what is tested
    (tmp_path / "config.yaml").write_text(
        f"agent: {{name: card, type: openai}}\nmodel: {{path: {policy}}}\nenvironment: {{train_tasks: math}}\n"
        "training: {algorithm: grpo, episodes: 1, batch_size: 2, group_size: 2, max_new_tokens: 8, checkpoint_every: 1}\n"
    )
    script = f"{block('env')}\nagent-lightning train --config config.yaml\n"
    with moto_endpoint() as endpoint:
        env = {**_env(tmp_path / "home"), **aws_env(endpoint), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
        s3.create_bucket(Bucket="my-bucket")
        result = subprocess.run(["bash", "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="my-bucket", Prefix="agent-lightning/")["Contents"]}
    prefix = "agent-lightning/runs/card-grpo/"
    assert {f"{prefix}{name}" for name in ("run.json", "metrics.jsonl", "training.log", "checkpoints/step-1.done")} <= keys
    assert f"{prefix}checkpoints/step-1/trainer_state.pt" in keys and f"{prefix}checkpoints/step-1/store.db" in keys


def _env(home: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "AGL_HOME": str(home), "AGL_AUTO_INSTRUMENT": "true", "PYTHONUNBUFFERED": "1", **extra}


def _run_python(tmp_path: Path, prelude: str, code: str, epilogue: str, env: dict[str, str]) -> str:
    script = tmp_path / "card_block.py"
    script.write_text(f"{prelude}\n# --- the card's block, as written ---\n{code}\n# ---\n{epilogue}\n")
    result = subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _store(home: Path) -> LightningStore:  # the store every block writes to by default
    return LightningStore(f"sqlite:///{home / 'store.db'}")


def test_option_a_emit_tool_call_stores_the_chat_span_with_its_context(tmp_path: Path) -> None:
    prelude = (
        'model = "scripted"\n'
        'messages = [{"role": "user", "content": "Weather in Paris?"}]\n'
        'tools = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object", '
        '"properties": {"query": {"type": "string"}}}}}]\n'
    )
    epilogue = "print(response.choices[0].message.tool_calls[0].function.name)"
    with ScriptedOpenAI(lambda body: tool_call("search", query="Paris weather")) as server:
        out = _run_python(tmp_path, prelude, block("emit"), epilogue, _env(tmp_path / "home", OPENAI_BASE_URL=server.base_url))
        assert len(server.chat_requests()) == 1 and server.chat_requests()[0]["body"]["tools"][0]["function"]["name"] == "search"
    assert out.strip() == "search"  # the response comes back to the agent
    chats = [s for s in _store(tmp_path / "home").query_spans(unassigned=True) if s.name == semconv.chat_span_name("scripted")]
    assert len(chats) == 1 and json.loads(chats[0].attributes[semconv.AGL_TOOL_CALL_CONTEXT]) == {"task": "search"}


PLAIN_OPENAI_AGENT = '''
import openai


class PlainAgent:  # framework code that knows nothing of Agent Lightning
    def __init__(self):
        self.client = openai.OpenAI()

    def run(self, query):
        reply = self.client.chat.completions.create(model="scripted", messages=[{"role": "user", "content": query}])
        return reply.choices[0].message.content


your_agent = PlainAgent()
user_query = "What is 12 * 34?"
input_data = {"question": user_query}
'''


def test_option_b_tracer_records_the_unchanged_agents_llm_call(tmp_path: Path) -> None:
    with ScriptedOpenAI(lambda body: "408") as server:
        out = _run_python(tmp_path, PLAIN_OPENAI_AGENT, block("tracer"), "print(result)",
                          _env(tmp_path / "home", OPENAI_BASE_URL=server.base_url))  # fmt: skip
    assert out.strip() == "408"
    store = _store(tmp_path / "home")
    (rollout,) = store.query_rollouts()
    assert rollout.status == "succeeded" and rollout.input == {"question": "What is 12 * 34?"}
    names = [s.name for s in store.query_spans(rollout.rollout_id)]
    assert semconv.chat_span_name("scripted") in names and "invoke_agent my-agent" in names, names


#: The smallest run that still trains and evaluates every set (the card says 100 episodes of 16 tasks).
SMOKE = ["--set", "training.episodes=2", "--set", "training.batch_size=2", "--set", "training.group_size=2",
         "--set", "environment.eval_size=2"]  # fmt: skip


def test_config_yaml_trains_through_the_cli_with_per_set_heldout_results(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    (tmp_path / "config.yaml").write_text(block("config"))
    command = shlex.split(block("train").strip())
    assert command[0] == "agent-lightning"
    result = subprocess.run([sys.executable, "-m", "agl_core.cli.main", *command[1:], *SMOKE], env=_env(tmp_path / "home"),
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    heldout = json.loads((tmp_path / "home" / "runs" / "my-agent-grpo" / "heldout.json").read_text())
    for when in ("before", "after"):
        for name in ("math", "coding", "reasoning"):
            assert heldout[when][f"heldout_n/{name}"] == 2
            assert 0.0 <= heldout[when][f"heldout_reward_sampled/{name}"] <= 1.0


def test_set_overrides_a_config_key_for_one_run(tmp_path: Path) -> None:
    """``--set`` (the cap above) works on any config, card or not: dotted keys, YAML values, one-line errors."""
    from click.testing import CliRunner

    from agl_core.cli.main import main

    config = tmp_path / "config.yaml"
    config.write_text("training:\n  episodes: 100\nenvironment:\n  eval_tasks: math\n")
    sets = ["--set", "training.episodes=3", "--set", "environment.eval_tasks=[math, coding]", "--set", "environment.eval_size=2"]
    result = CliRunner().invoke(main, ["train", "--config", str(config), "--dry-run", *sets])
    assert result.exit_code == 0, result.output
    assert "'episodes': 3" in result.output and ", 4 eval" in result.output  # 2 of math + 2 of coding
    assert config.read_text().endswith("eval_tasks: math\n")  # the file is left as it was
    for bad, message in (("episodes", "expected KEY=VALUE"), ("training.episodes.x=1", "training.episodes is not a section")):
        result = CliRunner().invoke(main, ["eval", "--config", str(config), "--set", bad])
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def _run_until(script: Path, env: dict[str, str], done: Callable[[], bool], timeout: float = 150) -> str:
    """Run `script` until `done()` holds, then stop it (SIGTERM to its process group); its output."""
    err = script.with_suffix(".out")
    with err.open("w") as out:
        proc = subprocess.Popen([sys.executable, str(script)], env=env, cwd=script.parent, stdout=out, stderr=out,
                                start_new_session=True)  # fmt: skip
        try:
            deadline = time.monotonic() + timeout
            while not done():
                assert proc.poll() is None, f"exited {proc.returncode} early:\n{err.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"not done after {timeout}s:\n{err.read_text()[-3000:]}"
                time.sleep(1)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
    return err.read_text()


def _scored_heldout(home: Path) -> list[Rollout]:
    if not (home / "store.db").exists():
        return []
    return _store(home).query_rollouts(status=FINISHED, mode="val")


def test_sql_snippet_trains_and_evaluates_on_sql_generation(tmp_path: Path) -> None:
    """The snippet runs as written (``episodes=500``) until its first held-out evaluation has scored
    more than one distinct `sql-generation` question; then it is stopped."""
    pytest.importorskip("torch")
    home = tmp_path / "home"
    script = tmp_path / "sql_card.py"
    script.write_text(f"from agentlightning import execute_sql, query_schema\n{block('sql')}")
    _run_until(script, _env(home), lambda: len({r.input["question"] for r in _scored_heldout(home)}) > 1)
    scored = _scored_heldout(home)
    assert {r.input["grader"] for r in scored} == {"execution_match"} and all(r.final_reward in (0.0, 1.0) for r in scored)
    chat = next(s for s in _store(home).query_spans(scored[0].rollout_id) if s.name.startswith("chat "))
    offered = {t["function"]["name"] for t in json.loads(chat.attributes[semconv.GEN_AI_TOOL_DEFINITIONS])}
    assert offered == {"execute_sql", "query_schema"} and "You are a SQL expert..." in chat.attributes[semconv.GEN_AI_SYSTEM_INSTRUCTIONS]
    assert (home / "runs" / "sql-agent-grpo").is_dir()


def test_python_api_block_trains_into_the_default_store_and_writes_the_log(tmp_path: Path) -> None:
    """`LightningStore()` + `GRPOTrainer(store=store).train(agent=my_agent)` with the default episodes:
    run until its first held-out evaluation has scored a rollout in ``$AGL_HOME/store.db``, then stopped."""
    pytest.importorskip("torch")
    home = tmp_path / "home"
    script = tmp_path / "api_card.py"
    script.write_text(f'from agentlightning import Agent\nmy_agent = Agent(name="my-agent", system_prompt="Answer with the number only.")\n'
                      f"{block('python-api')}")  # fmt: skip
    output = _run_until(script, _env(home), lambda: bool(_scored_heldout(home)))
    (watched,) = [line for line in block("watch").splitlines() if line.startswith("tail -f")]
    log = Path(watched.split()[-1].replace("~/.agent-lightning", str(home)))  # AGL_HOME moves ~/.agent-lightning
    run_line = f"(grpo): folder {home / 'runs' / 'my-agent-grpo'}; log {log}; store sqlite:///{home / 'store.db'}"
    assert run_line in log.read_text() and run_line in output  # the log file, and the console (not a TTY)
    assert not (tmp_path / "runs").exists()


def test_dashboard_block_starts_and_serves(tmp_path: Path) -> None:
    (command,) = [line for line in block("watch").splitlines() if line.startswith("agent-lightning dashboard")]
    args = shlex.split(command)[1:]
    with socket.socket() as s:
        taken = s.connect_ex(("127.0.0.1", 8080)) == 0
    if taken:  # another program holds the card's 8080: the same command on a free port
        args[args.index("--port") + 1] = str(free_port())
    port = int(args[args.index("--port") + 1])
    proc = subprocess.Popen([sys.executable, "-m", "agl_core.cli.main", *args], env=_env(tmp_path / "home"), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "the dashboard did not start"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    assert response.status == 200
                    break
            except urllib.error.HTTPError:
                raise
            except OSError:  # not listening yet
                time.sleep(0.5)
    finally:
        proc.terminate()
        out = proc.communicate(timeout=15)[0]
    assert f"127.0.0.1:{port}" in out  # its start line names where it listens
