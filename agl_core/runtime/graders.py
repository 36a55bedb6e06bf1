"""Deterministic graders for task sets: ``grade(task, output) -> float`` in [0, 1]."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def last_number(text: str) -> float | None:
    found = _NUMBER.findall(text.replace(",", ""))
    return float(found[-1]) if found else None


def numeric(task: dict[str, Any], output: str) -> float:
    """1 if the last number in the output equals the expected answer (to 1e-6)."""
    got = last_number(output or "")
    return float(got is not None and abs(got - float(task["answer"])) < 1e-6)


def exact(task: dict[str, Any], output: str) -> float:
    """1 if the output, stripped and case-folded, equals the answer."""
    return float((output or "").strip().casefold() == str(task["answer"]).strip().casefold())


def contains(task: dict[str, Any], output: str) -> float:
    """1 if the answer appears in the output as a word (case-folded)."""
    return float(re.search(rf"\b{re.escape(str(task['answer']).casefold())}\b", (output or "").casefold()) is not None)


def python_tests(task: dict[str, Any], output: str, timeout_s: float = 10.0) -> float:
    """Run the task's tests against the code in the output (fenced or bare) in a subprocess."""
    match = re.search(r"```(?:python)?\n(.*?)```", output or "", re.S)
    code = match.group(1) if match else (output or "")
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(code + "\n\n" + task["tests"] + "\n")
        path = f.name
    try:
        result = subprocess.run([sys.executable, path], capture_output=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return 0.0
    return float(result.returncode == 0)


SQL_TIMEOUT_S = 2.0
SQL_MAX_ROWS = 100_000
_READ_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
_SQL_FENCE = re.compile(r"```(?:sql|sqlite)?\s*\n(.*?)```", re.S | re.I)


def _only_reads(action: int, *_: Any) -> int:
    return sqlite3.SQLITE_OK if action in _READ_ACTIONS else sqlite3.SQLITE_DENY


def run_readonly_sql(
    database: str | Path, sql: str, *, timeout_s: float = SQL_TIMEOUT_S, max_rows: int = SQL_MAX_ROWS
) -> list[tuple[Any, ...]]:
    """Rows of one query on a SQLite file, opened read-only; anything but reading is refused.

    Raises `PermissionError` for a statement that is not a plain read (writes, DDL, PRAGMA, ATTACH),
    `TimeoutError` when it runs past `timeout_s`, `ValueError` past `max_rows` rows, and
    `sqlite3.Error` for invalid SQL.
    """
    path = Path(database)
    if not path.is_file():
        raise FileNotFoundError(f"no SQLite database at {path}")
    deadline = time.monotonic() + timeout_s
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
    try:
        conn.set_authorizer(_only_reads)
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
        try:
            rows = conn.execute(sql).fetchmany(max_rows + 1)
        except sqlite3.DatabaseError as exc:
            if str(exc) == "not authorized":
                raise PermissionError("only read-only queries (SELECT/WITH) are allowed") from None
            if str(exc) == "interrupted":
                raise TimeoutError(f"query stopped after {timeout_s:g}s") from None
            raise
    finally:
        conn.close()
    if len(rows) > max_rows:
        raise ValueError(f"query returned more than {max_rows} rows")
    return rows


def extract_sql(output: str) -> str:
    """The query in a model's reply: the last ```sql fenced block, else the whole reply."""
    blocks = _SQL_FENCE.findall(output or "")
    return (blocks[-1] if blocks else output or "").strip().rstrip(";").strip()


def _normalized(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    # floats rounded so that equivalent arithmetic (AVG vs SUM/COUNT) compares equal
    return [tuple(round(v, 6) if isinstance(v, float) else v for v in row) for row in rows]


def execution_match(task: dict[str, Any], output: str) -> float:
    """1 if the reply's SQL returns the same rows as the gold query ``answer`` on ``database``.

    Rows compare as a multiset unless ``ordered`` is true (the question asks for an order);
    invalid SQL, a refused write, or a query past ``timeout_s`` scores 0. A broken gold query raises.
    """
    database, timeout_s = task["database"], float(task.get("timeout_s", SQL_TIMEOUT_S))
    gold = _normalized(run_readonly_sql(database, task["answer"], timeout_s=timeout_s))
    query = extract_sql(output)
    if not query:
        return 0.0
    try:
        got = _normalized(run_readonly_sql(database, query, timeout_s=timeout_s))
    except (sqlite3.Error, PermissionError, TimeoutError, ValueError):
        return 0.0
    if task.get("ordered"):
        return float(got == gold)
    return float(Counter(got) == Counter(gold))


GRADERS: dict[str, Callable[..., float]] = {
    "numeric": numeric,
    "exact": exact,
    "contains": contains,
    "python_tests": python_tests,
    "execution_match": execution_match,
}


def grade(task: Any, output: str) -> float | None:
    """Grade `output` for a task dict naming its grader (default ``numeric`` when it has an answer)."""
    if not isinstance(task, dict) or ("answer" not in task and "tests" not in task):
        return None
    name = task.get("grader") or ("python_tests" if "tests" in task else "numeric")
    if name not in GRADERS:
        raise ValueError(f"unknown grader {name!r}; known: {sorted(GRADERS)}")
    return GRADERS[name](task, output)
