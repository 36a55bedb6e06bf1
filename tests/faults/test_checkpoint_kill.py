"""A trainer killed (``kill -9``) while it writes a checkpoint: every checkpoint `list_checkpoints`
offers loads, and ``--resume`` (`policy_to_train` with ``resume=True``) takes the last complete one."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")

from transformers import AutoModelForCausalLM  # noqa: E402

from agl_trl.checkpoints import checkpoint_step, list_checkpoints, load_state  # noqa: E402
from agl_trl.loading import policy_to_train  # noqa: E402
from tests.faults.conftest import report  # noqa: E402
from tests.faults.procs import kill9  # noqa: E402
from tests.trainers.rl_fixtures import rl_config  # noqa: E402


def _writer(out: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.faults.checkpoint_writer", str(out), mode], stdout=subprocess.PIPE, text=True
    )


def _read_until(proc: subprocess.Popen, line: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        got = proc.stdout.readline()
        assert got, f"the writer ended (exit {proc.wait()}) before printing {line!r}"
        if got.strip() == line:
            return
    raise AssertionError(f"no {line!r} within {timeout} s")


def _resumed_from(out: Path) -> tuple[Path | None, int]:
    """The checkpoint ``--resume`` continues from, and the step of the state it restores."""
    model, _, state, latest = policy_to_train(rl_config(out / "no-base-model", out), out, resume=True)
    assert model is not None and state is not None
    return latest, state["step"]


def _assert_loadable(checkpoints: list[Path]) -> None:
    for path in checkpoints:
        assert load_state(path)["step"] == checkpoint_step(path)
        AutoModelForCausalLM.from_pretrained(path)


def test_a_kill_mid_write_leaves_the_previous_checkpoint_for_resume(tmp_path: Path) -> None:
    writer = _writer(tmp_path, "stall")
    try:
        _read_until(writer, "writing 2")
    finally:
        kill9(writer)
    half = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    complete = list_checkpoints(tmp_path)
    assert [p.name for p in complete] == ["step-1"] and len(half) == 2  # step 2 lies half-written beside it
    _assert_loadable(complete)
    assert _resumed_from(tmp_path) == (tmp_path / "checkpoints" / "step-1", 1)
    report(f"checkpoint kill -9 mid-write: folders {half}, complete {[p.name for p in complete]}, --resume from step-1")


def test_kills_at_arbitrary_moments_never_offer_a_broken_checkpoint(tmp_path: Path) -> None:
    rng = random.Random(16)
    seen = []
    for round in range(2):
        out = tmp_path / f"run-{round}"
        writer = _writer(out, "loop")
        try:
            _read_until(writer, "saved 1")
            time.sleep(rng.uniform(0.2, 1.5))
        finally:
            kill9(writer)
        complete = list_checkpoints(out)
        _assert_loadable(complete)
        latest, step = _resumed_from(out)
        assert latest == complete[-1] and step == checkpoint_step(complete[-1])
        seen.append(f"{len(complete)} complete (latest step-{step})")
    report(f"checkpoint kill -9 at random moments: {'; '.join(seen)}; every listed checkpoint loads")
