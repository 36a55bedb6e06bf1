"""Task sets by name everywhere: one resolver for config files and the Python API, and evaluation
reported per task set and over all of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from agl_core.cli.config import load_config, parse_config
from agl_core.cli.evaluate import evaluate_config
from agl_core.cli.launch import build_tasks
from agl_core.cli.main import main
from agl_core.plugins.manager import get_plugin_manager
from agl_core.store import LightningStore
from agl_core.training.tasksets import TASK_SET, named_sets, resolve_tasks, task_from_dict
from agl_core.types import Task
from tests.core import algorithm_plugin


@pytest.fixture()
def echo_plugin():
    """The ``echo`` algorithm (default eval resources: none) registered for one test."""
    pm = get_plugin_manager()
    pm.register(algorithm_plugin, name="test-algorithms")
    yield
    pm.unregister(algorithm_plugin)


def write_jsonl(path: Path, answers: list[int]) -> Path:
    path.write_text("".join(json.dumps({"id": str(i), "answer": a}) + "\n" for i, a in enumerate(answers)))
    return path


def test_names_paths_tasks_and_dicts_mix_in_one_list(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "mine.jsonl", [1, 0])
    mine = Task(task_id="t1", input={"q": "hi"})
    tasks = resolve_tasks(["math", "mine.jsonl", mine, {"q": "inline"}], "eval", n=3, base_dir=tmp_path)
    assert [t.metadata.get(TASK_SET) for t in tasks] == ["math"] * 3 + ["mine.jsonl"] * 2 + [None, None]
    assert tasks[0].input["question"] == resolve_tasks("math", "eval", n=1)[0].input["question"]  # the eval split
    assert tasks[5] is mine and tasks[6] == task_from_dict({"q": "inline"})  # a dict's id is its content's
    assert resolve_tasks(None, "eval") == [] and resolve_tasks({"q": 1}, "train") == [task_from_dict({"q": 1})]


def test_a_string_is_a_set_or_a_file_never_a_task_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as info:
        resolve_tasks(["math", "What is 2 + 2?"], "eval")
    message = str(info.value)
    assert "\n" not in message and "'What is 2 + 2?'" in message
    assert "known task sets are coding, math, reasoning, sql-generation" in message


def test_the_same_task_id_in_two_sets_stays_apart(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", [1, 0])
    write_jsonl(tmp_path / "b.jsonl", [1])
    ids = [t.task_id for t in resolve_tasks(["a.jsonl", "b.jsonl"], "eval", base_dir=tmp_path)]
    assert ids == ["0", "1", "b.jsonl/0"]


def test_the_cards_environment_section_names_three_sets_and_trains_on_their_train_splits() -> None:
    card = yaml.safe_load('environment:\n  eval_tasks:\n    - "math"\n    - "coding"\n    - "reasoning"\n')
    config = parse_config(card)
    held_out, train = build_tasks(config, "eval"), build_tasks(config, "train")
    assert {t.metadata[TASK_SET] for t in held_out} == {t.metadata[TASK_SET] for t in train} == {"math", "coding", "reasoning"}
    assert not {t.task_id for t in train} & {t.task_id for t in held_out}
    small = parse_config({"environment": {**card["environment"], "eval_size": 2}})  # a smoke run's cap, per set
    assert [t.metadata[TASK_SET] for t in build_tasks(small, "eval")] == ["math", "math", "coding", "coding", "reasoning", "reasoning"]
    # only names stand in for training tasks: a file or an inline task is never trained on
    assert named_sets(["sql-generation", "mine.jsonl", {"q": 1}]) == ["sql-generation"] and named_sets(None) == []


def eval_config(folder: Path, eval_tasks: Any) -> Path:
    write_jsonl(folder / "half.jsonl", [1, 0])
    write_jsonl(folder / "full.jsonl", [1, 1, 1])
    config = {
        "agent": {"name": "echo", "type": "python", "entrypoint": "tests.core.algorithm_plugin:agent"},
        "training": {"algorithm": "echo", "n_workers": 2},
        "environment": {"eval_tasks": eval_tasks},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder / "config.yaml"


def test_eval_reports_each_set_and_all_together(tmp_path: Path, echo_plugin) -> None:
    config = load_config(eval_config(tmp_path, ["half.jsonl", "full.jsonl"]))
    rows = evaluate_config(config, LightningStore("memory://"))
    assert rows == [
        {"task_set": "half.jsonl", "n": 2, "mean_reward": 0.5, "success_rate": 0.5},
        {"task_set": "full.jsonl", "n": 3, "mean_reward": 1.0, "success_rate": 1.0},
        {"task_set": "all", "n": 5, "mean_reward": 0.8, "success_rate": 0.8},
    ]
    result = CliRunner().invoke(main, ["eval", "--config", str(tmp_path / "config.yaml"), "--store", "memory://"])
    assert result.exit_code == 0, result.output
    table = [line.split("│")[1:-1] for line in result.output.splitlines() if line.count("│") == 5]
    assert [[cell.strip() for cell in row] for row in table] == [
        ["half.jsonl", "2", "0.500", "0.500"],
        ["full.jsonl", "3", "1.000", "1.000"],
        ["all", "5", "0.800", "0.800"],
    ]


def test_eval_of_one_set_prints_one_row_and_a_typo_is_one_line(tmp_path: Path, echo_plugin) -> None:
    eval_config(tmp_path, "full.jsonl")
    result = CliRunner().invoke(main, ["eval", "--config", str(tmp_path / "config.yaml"), "--store", "memory://"])
    assert result.exit_code == 0 and "full.jsonl" in result.output and "all" not in result.output
    eval_config(tmp_path, ["full.jsonl", "sql-generaton"])
    result = CliRunner().invoke(main, ["eval", "--config", str(tmp_path / "config.yaml"), "--store", "memory://"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: environment.eval_tasks: unknown task set 'sql-generaton': known task sets are coding, math, "
        "reasoning, sql-generation; or give an existing JSONL file"
    ]
