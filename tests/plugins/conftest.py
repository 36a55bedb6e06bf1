"""Fixtures shared by the plugin tests."""

from __future__ import annotations

import pytest

import agentlightning as agl
from agl_core.plugins.manager import uninstrument
from agl_core.store import LightningStore


@pytest.fixture()
def store(tmp_path, monkeypatch):
    """An in-memory store configured as the global one, with AGL_HOME in the test's tmp_path;
    every plugin is uninstrumented afterwards. A test module that wants plugins on for all its
    tests overrides it with ``def store(store): instrument([...]); return store``."""
    monkeypatch.setenv("AGL_HOME", str(tmp_path))
    store = LightningStore("memory://")
    agl.configure(store=store)
    yield store
    uninstrument()
