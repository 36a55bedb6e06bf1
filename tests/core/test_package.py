"""The base install's promises: a quick import with no torch or framework, one-line extra hints."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_is_quick_and_pulls_no_heavy_dependency() -> None:
    code = (
        "import sys, time\n"
        "t = time.perf_counter(); import agentlightning as agl; dt = time.perf_counter() - t\n"
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'openai', 'langchain_core', 'crewai', 'autogen_core', 'agents') if m in sys.modules]\n"
        "print(dt, heavy)\n"
        "assert not heavy, heavy\n"
        "assert dt < 1.0, dt\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stdout + result.stderr


def test_missing_extra_gives_one_line_hint() -> None:
    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # as if the rl extra were not installed\n"
        "import agentlightning as agl\n"
        "try:\n"
        "    agl.GRPOTrainer\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = _run(code)
    assert "pip install 'agentlightning[rl]'" in result.stdout, result.stdout + result.stderr
    code_openai = (
        "import sys\n"
        "sys.modules['openai'] = None\n"
        "import agentlightning as agl\n"
        "try:\n"
        "    agl.emit_tool_call('m', [{'role': 'user', 'content': 'hi'}])\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    assert "pip install 'agentlightning[openai]'" in _run(code_openai).stdout
