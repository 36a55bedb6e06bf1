"""The built-in ``sql-generation`` task set and its execution-match grader, on the real SQLite file."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from agl_core.runtime.graders import grade, run_readonly_sql
from agl_core.training.sql_database import database_path, execute_sql, query_schema
from agl_core.training.tasksets import load_tasks, task_set_names

FOREVER = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT COUNT(*) FROM n"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def reply(sql: str) -> str:
    return f"Here is the query:\n```sql\n{sql}\n```"


def task(question_start: str, split: str = "train") -> dict[str, Any]:
    for t in load_tasks("sql-generation", split, n=1000) + load_tasks(
        "sql-generation", "eval" if split == "train" else "train", n=1000
    ):
        if t.input["question"].startswith(question_start):
            return t.input
    raise AssertionError(f"no task starting {question_start!r}")


def test_the_set_is_a_few_hundred_graded_questions_split_without_overlap() -> None:
    assert "sql-generation" in task_set_names()
    train, evals = load_tasks("sql-generation", "train", n=1000), load_tasks("sql-generation", "eval", n=1000)
    assert len(train) >= 200 and len(evals) >= 50
    assert load_tasks("sql-generation", "train", n=1000) == train
    assert not {t.input["question"] for t in train} & {t.input["question"] for t in evals}
    assert len({t.task_id for t in train + evals}) == len(train) + len(evals)
    assert [t.task_id for t in load_tasks("sql-generation", "train", n=5)] == [t.task_id for t in train[:5]]
    assert any(t.input["ordered"] for t in train) and any(not t.input["ordered"] for t in train)
    assert all(grade(t.input, reply(t.input["answer"])) == 1.0 for t in train + evals)
    assert Path(train[0].input["database"]) == database_path()


def test_the_database_is_built_once_into_the_cache_dir(tmp_path: Path) -> None:
    path = database_path()
    assert path.parent == tmp_path / "cache" / "agent-lightning" / "sql-generation"
    built = path.stat().st_mtime_ns
    assert database_path() == path and path.stat().st_mtime_ns == built
    assert run_readonly_sql(path, "SELECT COUNT(*) FROM books") == [(80,)]


def test_equal_rows_in_another_order_match_unless_the_question_asks_for_an_order() -> None:
    unordered = task("List the titles of the books written by")
    assert not unordered["ordered"]
    shuffled = f"SELECT title FROM ({unordered['answer']}) ORDER BY title DESC"
    assert grade(unordered, reply(shuffled)) == 1.0

    ordered = task("Which customers live in Lyon? List their names in alphabetical order.")
    assert ordered["ordered"]
    assert grade(ordered, reply("SELECT name FROM customers WHERE city = 'Lyon' ORDER BY name")) == 1.0
    assert grade(ordered, reply("SELECT name FROM customers WHERE city = 'Lyon' ORDER BY name DESC")) == 0.0


def test_a_different_but_equivalent_query_matches() -> None:
    average = task("What is the average price of mystery books?")
    assert grade(average, reply("SELECT SUM(price) / COUNT(*) FROM books WHERE genre = 'mystery'")) == 1.0
    by_country = task("How many books were written by authors from Japan?")
    subquery = "select count(id) from books where author_id in (select id from authors where country = 'Japan');"
    assert grade(by_country, subquery) == 1.0  # a bare reply, lower case, trailing semicolon


def test_a_wrong_query_an_invalid_one_and_no_query_score_zero() -> None:
    count = task("How many mystery books are there?")
    assert grade(count, reply("SELECT COUNT(*) FROM books WHERE genre = 'poetry'")) == 0.0
    assert grade(count, reply("SELECT COUNT(*) FROM books")) == 0.0
    assert grade(count, reply("SELEKT COUNT(*) FROM bookz")) == 0.0
    assert grade(count, reply("SELECT COUNT(*) FROM no_such_table")) == 0.0
    assert grade(count, "There are several mystery books.") == 0.0
    assert grade(count, "") == 0.0


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM books",
        "UPDATE books SET price = 0",
        "DROP TABLE books",
        "INSERT INTO authors VALUES (99, 'X', 'Y', 2000)",
        "CREATE TABLE t (x)",
        "PRAGMA writable_schema = ON",
        "SELECT 1; DELETE FROM books",
    ],
)
def test_a_query_that_tries_to_write_is_refused_and_changes_nothing(statement: str) -> None:
    count = task("How many mystery books are there?")
    snapshot = (
        "SELECT (SELECT COUNT(*) FROM sqlite_master), (SELECT COUNT(*) FROM authors), (SELECT SUM(price) FROM books)"
    )
    before = run_readonly_sql(database_path(), snapshot)
    assert grade(count, reply(statement)) == 0.0
    with pytest.raises(Exception) as refused:
        execute_sql(statement)
    assert isinstance(refused.value, PermissionError) or "one statement" in str(refused.value)
    assert run_readonly_sql(database_path(), snapshot) == before


def test_attach_cannot_reach_another_file(tmp_path: Path) -> None:
    target = tmp_path / "other.db"
    with pytest.raises(PermissionError):
        execute_sql(f"ATTACH DATABASE '{target}' AS other")
    assert not target.exists()


def test_a_query_that_runs_too_long_is_stopped() -> None:
    count = {**task("How many mystery books are there?"), "timeout_s": 0.3}
    started = time.monotonic()
    assert grade(count, reply(FOREVER)) == 0.0
    assert time.monotonic() - started < 3.0
    with pytest.raises(TimeoutError, match="stopped after 0.2s"):
        run_readonly_sql(database_path(), FOREVER, timeout_s=0.2)


def test_the_agent_tools_read_the_shipped_database() -> None:
    assert "CREATE TABLE books" in query_schema() and "CREATE TABLE orders" in query_schema()
    assert json.loads(execute_sql("SELECT COUNT(*) FROM orders")) == [[500]]
    many = execute_sql("SELECT id FROM orders")
    assert json.loads(many.splitlines()[0]) == [[i] for i in range(1, 21)] and "480 more rows" in many
