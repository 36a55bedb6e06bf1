"""Test-wide settings: an isolated AGL_HOME, no telemetry from frameworks to the outside."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")
os.environ.setdefault("OPENAI_API_KEY", "test-key")
os.environ["AGL_HOME"] = tempfile.mkdtemp(prefix="agl-home-")
os.environ.pop("AGL_STORAGE", None)
os.environ.pop("OTEL_SDK_DISABLED", None)
# Each test instruments what it tests; the first trace instrumenting every framework of the
# process is tested on its own, in fresh processes (tests/core/test_autoinstrument.py).
os.environ["AGL_AUTO_INSTRUMENT"] = "false"
