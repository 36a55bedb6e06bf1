"""Task sets: built-in ones (``math``, ``coding``, ``reasoning``), registered ones, or JSONL files.

A task's input is a dict the agent receives as-is; graded sets carry ``question``, ``answer``
(or ``tests``) and ``grader`` (see `agl_core.runtime.graders`). Built-in sets are generated from fixed
seeds, so train and eval never overlap and every run sees the same tasks. Other layers add sets
with `register_task_sets` or a finder (the plugin layer installs one reading ``agl_task_sets``).

`resolve_tasks` is the one entry point for what users write (config ``environment.*_tasks``, the
trainers' ``train_tasks=``/``eval_tasks=``): names, JSONL paths, `Task`s and dicts, alone or mixed in
a list. Tasks loaded from a name or file carry it in ``metadata["task_set"]`` so that evaluation
reports each set on its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, Union

from agl_core.training.sql_tasks import sql_generation
from agl_core.types import Task

Split = str  # "train" | "eval"
TaskLoader = Callable[[Split, int], list[Task]]
#: One item of a task spec: a task-set name, a JSONL path, a `Task`, or a dict (the task's input).
TaskItem = Union[str, "os.PathLike[str]", Task, Mapping[str, Any]]
TaskSpec = Union[TaskItem, Sequence[TaskItem], None]

#: ``Task.metadata`` key naming the set a task was loaded from (absent for tasks given inline).
TASK_SET = "task_set"
#: What evaluation calls tasks given inline (no set).
INLINE_SET = "tasks"


def _math(split: Split, n: int) -> list[Task]:
    rng = random.Random(1000 if split == "train" else 2000)
    seen: set[str] = set()
    tasks: list[Task] = []
    while len(tasks) < n:
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        op = rng.choice("+-*")
        question = f"What is {a} {op} {b}?"
        # train and eval come from disjoint halves of the operand space
        if (a % 2 == 0) != (split == "train") or question in seen:
            continue
        seen.add(question)
        answer = {"+": a + b, "-": a - b, "*": a * b}[op]
        tasks.append(Task(task_id=f"math-{split}-{len(tasks)}", input={"question": question, "answer": answer, "grader": "numeric"}))
    return tasks


def _reasoning(split: Split, n: int) -> list[Task]:
    rng = random.Random(3000 if split == "train" else 4000)
    names = ["Ada", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana"]
    tasks = []
    for i in range(n):
        kind = i % 2
        if kind == 0:
            start, step = rng.randint(1, 20), rng.randint(2, 9)
            seq = [start + step * k for k in range(4)]
            question = f"What number comes next: {', '.join(map(str, seq))}, ?"
            answer: Any = start + step * 4
            grader = "numeric"
        else:
            a, b = rng.sample(names, 2)
            ages = rng.sample(range(10, 60), 2)
            question = f"{a} is {ages[0]} years old and {b} is {ages[1]}. Who is older? Answer with the name."
            answer = a if ages[0] > ages[1] else b
            grader = "contains"
        tasks.append(Task(task_id=f"reasoning-{split}-{i}", input={"question": question, "answer": answer, "grader": grader}))
    return tasks


_CODING = [
    ("add", "Write a Python function add(a, b) that returns a + b.", "assert add(2, 3) == 5\nassert add(-1, 1) == 0"),
    ("is_even", "Write a Python function is_even(n) returning True when n is even.", "assert is_even(4)\nassert not is_even(7)"),
    ("reverse", "Write a Python function reverse(s) that returns the string s reversed.", "assert reverse('abc') == 'cba'\nassert reverse('') == ''"),
    ("maximum", "Write a Python function maximum(xs) returning the largest item of a non-empty list.", "assert maximum([3, 9, 2]) == 9\nassert maximum([-5]) == -5"),
    ("count_vowels", "Write a Python function count_vowels(s) counting the letters aeiou (any case) in s.", "assert count_vowels('Hello') == 2\nassert count_vowels('xyz') == 0"),
    ("factorial", "Write a Python function factorial(n) for n >= 0.", "assert factorial(0) == 1\nassert factorial(5) == 120"),
    ("fib", "Write a Python function fib(n) returning the n-th Fibonacci number with fib(0)=0, fib(1)=1.", "assert fib(0) == 0\nassert fib(10) == 55"),
    ("is_palindrome", "Write a Python function is_palindrome(s) that ignores case.", "assert is_palindrome('Level')\nassert not is_palindrome('abc')"),
    ("square_all", "Write a Python function square_all(xs) returning the list of squares.", "assert square_all([1, 2, 3]) == [1, 4, 9]"),
    ("word_count", "Write a Python function word_count(s) returning the number of whitespace-separated words.", "assert word_count('a b  c') == 3\nassert word_count('') == 0"),
    ("clamp", "Write a Python function clamp(x, lo, hi) limiting x to [lo, hi].", "assert clamp(5, 0, 3) == 3\nassert clamp(-1, 0, 3) == 0\nassert clamp(2, 0, 3) == 2"),
    ("unique", "Write a Python function unique(xs) returning the items of xs without duplicates, in first-seen order.", "assert unique([1, 2, 1, 3, 2]) == [1, 2, 3]"),
]


def _coding(split: Split, n: int) -> list[Task]:
    half = len(_CODING) // 2
    chosen = _CODING[:half] if split == "train" else _CODING[half:]
    return [
        Task(task_id=f"coding-{name}", input={"question": prompt, "tests": tests, "grader": "python_tests"})
        for name, prompt, tests in chosen[:n]
    ]


BUILTIN_TASK_SETS: dict[str, Callable[[Split, int], list[Task]]] = {
    "math": _math,
    "reasoning": _reasoning,
    "coding": _coding,
    "sql-generation": sql_generation,
}


def load_jsonl(path: Path) -> list[Task]:
    """One task per line: a JSON object (the agent's input); ``id``/``task_id`` name it."""
    tasks = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{lineno}: not JSON ({exc})") from None
            task_id = str(data.get("task_id") or data.get("id") or f"{path.stem}-{lineno}") if isinstance(data, dict) else f"{path.stem}-{lineno}"
            tasks.append(Task(task_id=task_id, input=data))
    return tasks


_registered: dict[str, TaskLoader] = {}
_finders: list[Callable[[], Mapping[str, TaskLoader]]] = []


def register_task_sets(task_sets: Mapping[str, TaskLoader]) -> None:
    """Add named task sets: ``{"name": loader}``, ``loader(split, n) -> list[Task]``."""
    _registered.update(task_sets)


def add_task_set_finder(finder: Callable[[], Mapping[str, TaskLoader]]) -> None:
    """`finder()` returns more named task sets each time the sets are listed."""
    if finder not in _finders:
        _finders.append(finder)


def task_sets() -> dict[str, TaskLoader]:
    """Every known task set: the built-in ones win over registered ones of the same name."""
    found: dict[str, TaskLoader] = {}
    for finder in _finders:
        found.update(finder())
    return {**found, **_registered, **BUILTIN_TASK_SETS}


def task_set_names() -> list[str]:
    return sorted(task_sets())


def load_tasks(spec: str | os.PathLike[str], split: Split = "train", *, n: int = 256, base_dir: Path | str = ".") -> list[Task]:
    """Tasks from a task-set name or a JSONL path (relative to `base_dir`)."""
    known = task_sets()
    if isinstance(spec, str) and spec in known:
        return list(known[spec](split, n))
    path = Path(spec).expanduser()
    path = path if path.is_absolute() else Path(base_dir) / path
    if path.is_file():
        return load_jsonl(path)
    raise ValueError(f"unknown task set {str(spec)!r}: known task sets are {', '.join(sorted(known))}; or give an existing JSONL file")


def task_from_dict(data: Mapping[str, Any]) -> Task:
    """A task whose input is `data`; its id derives from the content, so it is stable across runs."""
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).digest()
    return Task(task_id=f"task-{(int.from_bytes(digest[:8], 'little') >> 1) % 10**12}", input=dict(data))


def task_set_of(task: Task) -> str:
    return str(task.metadata.get(TASK_SET) or INLINE_SET)


def named_sets(spec: TaskSpec) -> list[str]:
    """The task-set names in `spec` (not files or inline tasks): what to train on when only the
    eval sets are given, since a set's train split never overlaps its eval split."""
    items = spec if isinstance(spec, (list, tuple)) else [spec]
    known = task_sets()
    return [item for item in items if isinstance(item, str) and item in known]


def resolve_tasks(spec: TaskSpec, split: Split = "train", *, n: int = 256, base_dir: Path | str = ".") -> list[Task]:
    """The tasks `spec` names: one item or a list of items (see `TaskItem`), mixed freely.

    A string is a task-set name or an existing JSONL file, never a task's input: anything else is a
    `ValueError` naming the known sets. Tasks from a name or file are tagged with it (`TASK_SET`);
    a task id already used by another set gets that set's name as a prefix, so ids stay unique.
    """
    if spec is None:
        return []
    items = [spec] if isinstance(spec, (str, os.PathLike, Task, Mapping)) else list(spec)
    tasks: list[Task] = []
    owner: dict[str, str] = {}  # task id -> its set
    for item in items:
        if isinstance(item, Task):
            loaded = [item]
        elif isinstance(item, Mapping):
            loaded = [task_from_dict(item)]
        elif isinstance(item, (str, os.PathLike)):
            name = str(item)
            loaded = [t.model_copy(update={"metadata": {**t.metadata, TASK_SET: name}}) for t in load_tasks(item, split, n=n, base_dir=base_dir)]
        else:
            raise TypeError(f"a task is a task-set name, a JSONL path, a Task or a dict, not {type(item).__name__}")
        for task in loaded:
            name = task_set_of(task)
            if owner.setdefault(task.task_id, name) != name:
                task = task.model_copy(update={"task_id": f"{name}/{task.task_id}"})
                owner.setdefault(task.task_id, name)
            tasks.append(task)
    return tasks
