"""Deterministic graders for task sets: ``grade(task, output) -> float`` in [0, 1]."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
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


GRADERS: dict[str, Callable[..., float]] = {
    "numeric": numeric,
    "exact": exact,
    "contains": contains,
    "python_tests": python_tests,
}


def grade(task: Any, output: str) -> float | None:
    """Grade `output` for a task dict naming its grader (default ``numeric`` when it has an answer)."""
    if not isinstance(task, dict) or ("answer" not in task and "tests" not in task):
        return None
    name = task.get("grader") or ("python_tests" if "tests" in task else "numeric")
    if name not in GRADERS:
        raise ValueError(f"unknown grader {name!r}; known: {sorted(GRADERS)}")
    return GRADERS[name](task, output)
