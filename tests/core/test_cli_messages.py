"""What the CLI says: one-line refusals (exit code 2, no traceback) and the start line of each server.

Every command runs as a real subprocess; servers bind 127.0.0.1 on a free port (``--port 0``) and are
stopped by the test.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest
import yaml

from tests.fixtures.scripted_openai import ScriptedOpenAI, free_port

CLI = str(Path(sys.executable).with_name("agent-lightning"))


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=180, cwd=cwd, env={**os.environ, **(env or {})})


def write_config(folder: Path, **sections: object) -> Path:
    config = {
        "agent": {"name": "math-agent", "type": "openai", "system_prompt": "Answer with the number only."},
        "environment": {"train_tasks": "math", "eval_tasks": "math"},
        **sections,
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def assert_one_line(result: subprocess.CompletedProcess, line: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"error: {line}\n"  # the whole of it: one line, no traceback
    assert result.stdout == ""


def test_an_unknown_section_lists_the_valid_ones(tmp_path: Path) -> None:
    config = write_config(tmp_path, trainig={"algorithm": "grpo"})
    result = run_cli("train", "--config", str(config), "--dry-run")
    assert_one_line(
        result, "unknown section 'trainig' (did you mean 'training'?); valid sections: agent, apo, environment, model, store, training"
    )


@pytest.mark.parametrize("command", [["train", "--dry-run"], ["train"], ["eval"]])
def test_a_model_path_that_is_not_there_stops_before_anything_starts(tmp_path: Path, command: list[str]) -> None:
    missing = str(tmp_path / "no-such-model")
    config = write_config(tmp_path, model={"path": missing})
    result = run_cli(command[0], "--config", str(config), *command[1:])
    assert_one_line(result, f"model.path: no such folder {missing!r} (and no network to fetch a hub model)")
    assert not (Path(os.environ["AGL_HOME"]) / "runs" / "math-agent-grpo").exists()


@pytest.fixture()
def hub() -> Iterator[str]:
    """A stand-in for the hub on 127.0.0.1 (it answers, so there is "network"); no test contacts the internet."""
    with ScriptedOpenAI(lambda request: "unused") as server:
        yield server.base_url


def test_an_uncached_hub_name_is_left_to_a_hub_that_answers(tmp_path: Path, hub: str) -> None:
    config = write_config(tmp_path, model={"path": "nobody/not-a-cached-model"})
    result = run_cli("train", "--config", str(config), "--dry-run", env={"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": hub})
    assert result.returncode == 0, result.stderr


# free_port(): a 127.0.0.1 port nothing listens on
@pytest.mark.parametrize("env", [{"HF_HUB_OFFLINE": "1"}, {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"}])
def test_an_uncached_hub_name_is_refused_offline_or_when_the_hub_does_not_answer(tmp_path: Path, env: dict[str, str]) -> None:
    config = write_config(tmp_path, model={"path": "nobody/not-a-cached-model"})
    started = time.monotonic()
    result = run_cli("train", "--config", str(config), "--dry-run", env=env)
    assert_one_line(result, "model.path: no such folder 'nobody/not-a-cached-model' (and no network to fetch a hub model)")
    assert time.monotonic() - started < 30  # one short probe, not the hub's minute of retries


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="the Python trainers need torch")
def test_the_python_api_refuses_the_same_model_before_anything_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import agentlightning as agl

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.chdir(tmp_path)
    trainer = agl.GRPOTrainer(config=agl.RLConfig(model="nobody/not-a-cached-model"), store="memory://")
    with pytest.raises(ValueError) as raised:
        trainer.train(lambda task, resources: 1.0)
    assert str(raised.value) == "RLConfig.model: no such folder 'nobody/not-a-cached-model' (and no network to fetch a hub model)"
    assert not list(tmp_path.iterdir())  # no run folder, nothing loaded


def test_dry_run_prints_resolved_values(tmp_path: Path) -> None:
    result = run_cli("train", "--config", str(write_config(tmp_path, model={"path": "tiny"})), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "model:      tiny (the built-in model" in result.stdout
    assert f"output_dir: {Path(os.environ['AGL_HOME']) / 'runs' / 'math-agent-grpo'}\n" in result.stdout
    assert "None" not in result.stdout

    apo = write_config(tmp_path, model={"name": "gpt-4.1-mini"}, training={"algorithm": "apo", "output_dir": "out"})
    result = run_cli("train", "--config", str(apo), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "model:      gpt-4.1-mini at " in result.stdout and "tiny" not in result.stdout
    assert f"output_dir: {tmp_path / 'out'}\n" in result.stdout


def test_help_names_every_option_and_the_token_variables() -> None:
    top = run_cli("--help").stdout
    for variable in ("AGL_STORE_TOKEN", "AGL_DASHBOARD_TOKEN", "AGL_SERVE_API_KEY"):
        assert variable in top
    assert "README.md" in run_cli("train", "--help").stdout  # where the config keys are documented
    assert "AGL_SERVE_API_KEY" in run_cli("serve", "--help").stdout
    for command in ("train", "eval", "export", "collector", "dashboard", "serve"):
        text = run_cli(command, "--help").stdout
        options = re.findall(r"^\s+((?:-\w, )?--[\w-]+)(.*)$", text, re.M)
        assert options, text
        for name, rest in options:
            assert rest.strip() or name.endswith("--help"), f"{command} {name} has no help text"


class Server:
    """A CLI server as a subprocess; its output read on a thread, line by line."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})}
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 120) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                assert self.proc.poll() is None or not self.lines.empty(), "\n".join(self.seen)
                continue
            self.seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match
        raise AssertionError(f"no line matching {pattern!r} in:\n" + "\n".join(self.seen))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)


@pytest.fixture()
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        if server.proc.poll() is None:
            server.stop()


URL = r"(http://127\.0\.0\.1:\d+)"


def test_collector_says_where_it_listens_and_logs_requests_at_v(tmp_path: Path, servers: list[Server]) -> None:
    store = f"sqlite:///{tmp_path / 'c.db'}"
    server = Server("collector", "--port", "0", "--store", store, "-v")
    servers.append(server)
    match = server.wait_for(rf"^collector at {URL} \(store API, OTLP/HTTP at /v1/traces; no token; store SqlStore\(")
    assert server.seen[-1].endswith(f"store SqlStore({store!r}))")
    assert httpx.get(f"{match.group(1)}/health", timeout=5).status_code == 200
    server.wait_for(r'"GET /health HTTP/1.1" 200')


def test_a_token_is_announced_but_never_printed(tmp_path: Path, servers: list[Server]) -> None:
    store = f"sqlite:///{tmp_path / 'd.db'}"
    server = Server("dashboard", "--port", "0", "--store", store, env={"AGL_DASHBOARD_TOKEN": "s3cret-value"})
    servers.append(server)
    match = server.wait_for(rf"^dashboard at {URL} \(token required \(AGL_DASHBOARD_TOKEN\); sign in at {URL}/login; ")
    assert "s3cret-value" not in server.seen[-1]
    url = match.group(1)
    assert httpx.get(f"{url}/", timeout=5).status_code == 401
    assert httpx.get(f"{url}/", headers={"Authorization": "Bearer s3cret-value"}, timeout=5).status_code == 200
    server.stop()
    assert not any("GET /" in line for line in server.seen)  # requests are logged only at -v


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="serve needs the trainer (torch)")
def test_serve_tiny_serves_the_built_in_model_and_prints_its_folder(servers: list[Server]) -> None:
    from agl_trl.tiny_model import tiny_model_path

    cached = (tiny_model_path() / "config.json").is_file()
    server = Server("serve", "--model", "tiny", "--port", "0", "--poll-s", "0", "-v")
    servers.append(server)
    match = server.wait_for(rf"^serving tiny \((/\S+)\) at {URL}/v1 \(no API key; spans to ", timeout=240)
    assert (Path(match.group(1)) / "config.json").is_file()
    models = httpx.get(f"{match.group(2)}/v1/models", timeout=5).json()
    assert [m["id"] for m in models["data"]] == ["tiny"]
    server.wait_for(r'"GET /v1/models HTTP/1.1" 200')  # -v logs requests
    assert not [line for line in server.seen if "Loading weights" in line]
    assert any("building the tiny model" in line for line in server.seen) == (not cached)  # said only when built


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="serve needs the trainer (torch)")
def test_serve_refuses_a_missing_model_in_one_line(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    result = run_cli("serve", "--model", missing, "--port", "0")
    assert_one_line(result, f"--model: no such folder {missing!r} (and no network to fetch a hub model)")
