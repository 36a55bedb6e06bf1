import os

import pytest

from agl_core.store import LightningStore
from tests.dashboard.demo_store import build_demo_store


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("AGL_HOME", str(tmp_path / "agl_home"))
    monkeypatch.delenv("AGL_DASHBOARD_TOKEN", raising=False)
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")


@pytest.fixture
def demo_store(tmp_path):
    store = LightningStore(f"sqlite:///{tmp_path / 'store.db'}")
    store.demo_rollouts = build_demo_store(store)
    yield store
    store.close()
