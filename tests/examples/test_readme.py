"""The README's code works as written: the Python training snippet and the config.yaml sample."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def block_after(heading: str, lang: str) -> str:
    section = README[README.index(heading):]
    return re.search(rf"```{lang}\n(.*?)```", section, re.S).group(1)


def test_python_api_snippet_runs_as_written(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    script = tmp_path / "snippet.py"
    script.write_text(block_after("### From Python", "python"))
    env = {**os.environ, "AGL_HOME": str(tmp_path / "home")}
    result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"^[\d.]+ -> [\d.]+$", result.stdout.strip().splitlines()[-1])
    home = tmp_path / "home"  # the run's log and folder are under AGL_HOME, as a CLI run's, not in the cwd
    assert "step 2/2 reward=" in (home / "logs" / "training.log").read_text() and "step 2/2 reward=" in result.stderr
    assert (home / "runs" / "calc-agent-grpo" / "checkpoints" / "step-2").is_dir() and not (tmp_path / "runs").exists()


def test_config_sample_passes_dry_run(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(block_after("### From a config file", "yaml"))
    env = {**os.environ, "AGL_HOME": str(tmp_path / "home")}
    result = subprocess.run([sys.executable, "-m", "agl_core.cli.main", "train", "--config", str(config), "--dry-run"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "dry run: config is valid" in result.stdout
