"""The dashboard's JSON API fuzzed: random ids in paths and random query parameters (pages, filters)
answer below 500, a refusal as one line of JSON."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from agl_core.dashboard import create_dashboard_app
from agl_core.store import LightningStore
from tests.dashboard.demo_store import RUN_ID, build_demo_store
from tests.security.fuzzing import FUZZ, check_answer, examples

_IDS = st.one_of(st.text(max_size=30), st.sampled_from([RUN_ID, "..", "%2e%2e", "runs", "ro-x"])).map(lambda i: quote(i, safe=""))
_PARAMS = st.dictionaries(
    st.sampled_from(["limit", "offset", "since_step", "status", "mode", "agent", "run_id", "x"]),
    st.one_of(st.integers(-(2**70), 2**70).map(str), st.text(max_size=10), st.sampled_from(["", "-1", "0", "1e3", "running"])),
    max_size=4,
)
_PATHS = st.one_of(
    st.sampled_from(["/api/summary", "/api/runs", "/api/rollouts", "/api/resources"]),
    _IDS.map(lambda i: f"/api/runs/{i}"),
    _IDS.map(lambda i: f"/api/runs/{i}/metrics"),
    _IDS.map(lambda i: f"/api/rollouts/{i}"),
    _IDS.map(lambda i: f"/api/rollouts/{i}/spans"),
)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    store = LightningStore(f"sqlite:///{tmp_path_factory.mktemp('dash') / 'store.db'}")
    build_demo_store(store)
    with TestClient(create_dashboard_app(store), raise_server_exceptions=False) as client:
        yield client
        assert client.get("/api/runs").json()["total"] == 2  # still answering
    store.close()


@settings(FUZZ, max_examples=examples(400))
@given(path=_PATHS, params=_PARAMS)
def test_random_paths_and_parameters(client, path, params):
    check_answer("dashboard", client.get(path, params=params))


def test_a_run_page_names_a_run_never_a_path(client):
    for name in ("~", "~root", "..", "%2e%2e", ".hidden", "%2Ftmp", "~0"):
        for suffix in ("", "/metrics"):
            response = client.get(f"/api/runs/{name}{suffix}")
            check_answer("dashboard", response)
            assert response.status_code == 404, (name, response.text)
