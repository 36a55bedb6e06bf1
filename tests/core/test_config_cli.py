"""config.yaml validation and the CLI's behaviour without a trainer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from agl_core.cli.config import ConfigError, load_config, parse_config
from agl_core.cli.main import main
from agl_core.plugins.manager import get_plugin_manager
from agl_core.training.tasksets import load_tasks
from tests.core import algorithm_plugin

CLI = [sys.executable, "-m", "agl_core.cli.main"]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=os.environ.copy())


@pytest.fixture()
def echo_plugin():
    """`tests.core.algorithm_plugin` registered into the plugin manager for one test."""
    pm = get_plugin_manager()
    pm.register(algorithm_plugin, name="test-algorithms")
    yield
    pm.unregister(algorithm_plugin)


def echo_config(folder: Path, **training) -> Path:
    (folder / "tasks.jsonl").write_text("".join(json.dumps({"id": f"t{a}{i}", "answer": a}) + "\n" for i, a in enumerate([1, 0, 1])))
    config = {
        "agent": {"name": "echo", "type": "python", "entrypoint": "tests.core.algorithm_plugin:agent"},
        "training": {"algorithm": "echo", "n_workers": 1, **training},
        "environment": {"train_tasks": "tasks.jsonl"},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder / "config.yaml"


def test_errors_name_the_field_path() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"training": {"batch_size": "eight", "episodes": 0, "group_size": "four"}, "agent": {"type": "magic"}})
    text = str(info.value)
    assert "training.batch_size: Input should be a valid integer" in text and "(got 'eight')" in text
    assert "training.group_size: Input should be a valid integer" in text and "(got 'four')" in text  # grpo's own option
    assert "training.episodes" in text and "agent.type" in text


def test_a_bad_option_of_a_registered_algorithm_names_its_field(echo_plugin) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"training": {"algorithm": "echo", "repeats": "twice", "group_size": 8}})
    text = str(info.value)
    assert "training.repeats: Input should be a valid integer, unable to parse string as an integer (got 'twice')" in text
    assert "training.group_size: unknown key; known: algorithm, batch_size, episodes, n_workers, output_dir, repeats, runners, seed" in text
    with pytest.raises(ConfigError, match="training.algorithm: 'ppo' is not available; available: apo, echo, grpo, needs-gpu, rloo, sft"):
        parse_config({"training": {"algorithm": "ppo"}})


def test_a_plugin_algorithm_trains_by_name_from_a_config(tmp_path: Path, echo_plugin) -> None:
    config = echo_config(tmp_path, repeats=2)
    result = CliRunner().invoke(main, ["train", "--config", str(config), "--store", f"sqlite:///{tmp_path / 's.db'}", "--resume"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{"):])
    assert summary == {"rewards": [0.0, 0.0, 1.0, 1.0, 1.0, 1.0], "resume": True, "repeats": 2}
    dry = CliRunner().invoke(main, ["train", "--config", str(config), "--dry-run"])
    assert dry.exit_code == 0 and "algorithm:  echo {'algorithm': 'echo', 'episodes': 1" in dry.output and "'repeats': 2}" in dry.output


def test_the_install_hint_comes_from_the_registration(tmp_path: Path, echo_plugin) -> None:
    config = echo_config(tmp_path)
    config.write_text(config.read_text().replace("algorithm: echo", "algorithm: needs-gpu"))
    result = CliRunner().invoke(main, ["train", "--config", str(config), "--dry-run"])
    assert result.exit_code == 2
    assert "training.algorithm: 'needs-gpu' is not available (pip install 'agentlightning[gpu]'): no module named 'agl_test_gpu_runtime'" in result.output


def test_sections_and_extras(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("agent: {name: a, type: python, entrypoint: m:f, optimize: [writer]}\ntraining: {algorithm: grpo, group_size: 8}\n")
    config = load_config(tmp_path / "c.yaml")
    assert config.agent.optimize == ["writer"] and config.training.group_size == 8  # type: ignore[attr-defined]
    assert config.base_dir == tmp_path.resolve()


def test_task_sets_are_deterministic_and_disjoint(tmp_path: Path) -> None:
    train, evals = load_tasks("math", "train", n=100), load_tasks("math", "eval", n=100)
    assert load_tasks("math", "train", n=100) == train
    assert not {t.input["question"] for t in train} & {t.input["question"] for t in evals}
    (tmp_path / "t.jsonl").write_text('{"id": "a", "question": "1+1?", "answer": 2}\n\n{"question": "2+2?", "answer": 4}\n')
    tasks = load_tasks("t.jsonl", base_dir=tmp_path)
    assert [t.task_id for t in tasks] == ["a", "t-3"] and tasks[1].input["answer"] == 4
    with pytest.raises(ValueError, match="unknown task set"):
        load_tasks("nope")


def test_graders() -> None:
    from agl_core.runtime.graders import grade

    assert grade({"answer": 42}, "so it is 42.") == 1.0
    assert grade({"answer": 42}, "41") == 0.0
    assert grade({"answer": "Ada", "grader": "contains"}, "I think ada is older") == 1.0
    code = "```python\ndef add(a, b):\n    return a + b\n```"
    assert grade({"tests": "assert add(1, 2) == 3"}, code) == 1.0
    assert grade({"tests": "assert add(1, 2) == 4"}, code) == 0.0
    assert grade("free text", "x") is None


def test_cli_version_plugins_and_bad_config(tmp_path: Path) -> None:
    assert "agent-lightning" in run_cli("--version").stdout
    out = run_cli("plugins").stdout
    assert "task sets:" in out and "math" in out
    assert "algorithms:  apo [apo], grpo [rl], rloo [rl], sft [rl]" in out  # each with the extra that installs it
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: {batch_size: eight}\nenvironment: {train_tasks: math}\n")
    result = run_cli("train", "--config", str(bad), "--dry-run")
    assert result.returncode == 2 and "training.batch_size" in result.stderr and "Traceback" not in result.stderr
    missing = run_cli("train", "--config", str(tmp_path / "none.yaml"), "--dry-run")
    assert missing.returncode == 2 and "not found" in missing.stderr


def test_cli_export_traces_jsonl(tmp_path: Path) -> None:
    import agentlightning as agl
    from agl_core.types import Run

    url = f"sqlite:///{tmp_path / 's.db'}"
    store = agl.LightningStore(url)
    store.upsert_run(Run(run_id="run-x", algorithm="grpo"))
    store.enqueue_rollout({"q": 1}, run_id="run-x")
    result = run_cli("export", "--run", "run-x", "--format", "traces-jsonl", "--out", str(tmp_path / "out"), "--store", url)
    assert result.returncode == 0, result.stderr
    [line] = (tmp_path / "out" / "traces.jsonl").read_text().splitlines()
    assert json.loads(line)["rollout"]["input"] == {"q": 1}
    unknown = run_cli("export", "--run", "run-x", "--format", "onnx", "--out", str(tmp_path / "o2"), "--store", url)
    assert unknown.returncode == 2 and "unknown export format" in unknown.stderr
