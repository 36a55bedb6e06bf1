"""``config.yaml`` loading fuzzed: random YAML documents, mutated good configs, alias bombs and deep
nesting give a `Config` or a short `ConfigError` (one line, or one line per invalid field, at most
a few) — never another exception or a hang."""

from __future__ import annotations

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from agl_core.cli.config import ConfigError, load_config
from tests.security.fuzzing import FUZZ, examples

GOOD = """\
agent: {name: solver, type: openai, system_prompt: "Solve it."}
model: {path: tiny}
environment: {train_tasks: math, eval_tasks: [math, coding], train_size: 8, eval_size: 4}
training: {algorithm: grpo}
"""
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12))
_SECTIONS = st.sampled_from(["agent", "model", "environment", "training", "store", "apo", "nope", ""])
_KEYS = st.sampled_from(["name", "type", "path", "algorithm", "train_tasks", "eval_size", "optimize", "endpoint", "x"])
_VALUES = st.recursive(_SCALARS, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(_KEYS, kids, max_size=3), max_leaves=8)
_DOCUMENTS = st.one_of(
    st.dictionaries(_SECTIONS, st.one_of(_VALUES, st.dictionaries(_KEYS, _VALUES, max_size=4)), max_size=4).map(yaml.safe_dump),
    _VALUES.map(yaml.safe_dump),
    st.text(max_size=80),
    st.builds(lambda cut, junk: GOOD[:cut] + junk + GOOD[cut:], st.integers(0, len(GOOD)), st.text(max_size=6)),
)


def _load(tmp_path, text: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_config(path)
    except ConfigError as exc:
        lines = str(exc).splitlines()
        assert lines and len(lines) <= 12 and all(len(line) < 2000 for line in lines), str(exc)[:500]
        if not str(exc).startswith("invalid config:"):
            assert len(lines) == 1, str(exc)


@settings(FUZZ, max_examples=examples(300))
@given(text=_DOCUMENTS)
def test_random_yaml(tmp_path, text):
    _load(tmp_path, text)


def test_alias_bombs_deep_nesting_and_binary(tmp_path):
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for level in "bcdefgh":
        previous = chr(ord(level) - 1)
        bomb.append(f"{level}: &{level} [" + ", ".join([f"*{previous}"] * 9) + "]")
    bomb.append("environment: {train_tasks: *h}")
    for text in ("\n".join(bomb), "environment:\n  train_tasks: " + "[" * 5000 + "]" * 5000, "\0\x01\x02", "\t[", "? [a]\n: b"):
        _load(tmp_path, text)
    _load(tmp_path, "environment: {train_tasks: [" + ", ".join(["[1]"] * 5000) + "]}")  # 5,000 invalid items: a few listed
