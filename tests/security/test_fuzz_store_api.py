"""Every store API route (``POST /api/store/<method>``) fuzzed with random arguments: wrong types,
missing and unknown fields, unknown ids, huge and negative pages, random bodies. Each answer is
below 500 and a refusal is one line of JSON; afterwards the server still answers a valid call."""

from __future__ import annotations

import inspect
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from agl_core.server.app import create_app
from agl_core.server.store_api import MAX_WAIT_S
from agl_core.store import LightningStore
from agl_core.store.base import store_methods
from tests.security.fuzzing import FUZZ, check_answer, examples

METHODS = store_methods()
_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(["ro-known", "at-known", "run-known", "succeeded", "running", "train", "nope", ""]),
)
_VALUES = st.recursive(
    _LEAVES,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=12,
)
_SPAN_LIKE = st.fixed_dictionaries(
    {"trace_id": st.text(max_size=33), "span_id": st.text(max_size=17), "name": _VALUES, "start_time": _VALUES},
    optional={"attributes": st.dictionaries(st.text(max_size=10), _VALUES, max_size=3), "rollout_id": _VALUES},
)


def _parameters(method: str) -> list[str]:
    return [p for p in inspect.signature(getattr(LightningStore, method)).parameters if p != "self"]


@pytest.fixture(scope="module")
def store():
    store = LightningStore("memory://")
    store.enqueue_rollout({"q": 1}, run_id="run-known")
    yield store
    store.close()


@pytest.fixture(scope="module")
def client(store):
    with TestClient(create_app(store), raise_server_exceptions=False) as client:
        yield client


def _arguments(method: str):
    names = _parameters(method)
    values = {name: _SPAN_LIKE.map(lambda s: [s]) | _VALUES if name in ("spans", "items") else _VALUES for name in names}
    known = st.fixed_dictionaries({}, optional=values)
    unknown = st.dictionaries(st.text(max_size=8), _VALUES, max_size=2)
    return st.one_of(known, known, st.builds(lambda a, b: {**a, **b}, known, unknown))


def _no_long_waits(method: str, arguments: dict) -> dict:
    """A valid wait would hold its request up to `MAX_WAIT_S`: the fuzz tries bounds, not patience."""
    timeout = arguments.get("timeout")
    if method == "wait_for_rollouts" and isinstance(timeout, (int, float)) and 0.01 < timeout <= MAX_WAIT_S:
        arguments["timeout"] = 0
    return arguments


@pytest.mark.parametrize("method", METHODS)
@settings(FUZZ, max_examples=examples(60))
@given(data=st.data())
def test_random_arguments(client, method, data):
    arguments = _no_long_waits(method, data.draw(_arguments(method)))
    check_answer("store API", client.post(f"/api/store/{method}", content=json.dumps(arguments)))


@settings(FUZZ, max_examples=examples(200))
@given(
    method=st.sampled_from([*METHODS, "nope", "__init__", "close", "../health"]),
    body=st.one_of(st.binary(max_size=200), st.text(max_size=100).map(str.encode), _VALUES.map(lambda v: json.dumps(v).encode())),
)
def test_random_bodies(client, method, body):
    check_answer("store API", client.post(f"/api/store/{method}", content=body))


def test_pages_ids_and_waits_out_of_bounds_are_400(client):
    for method, arguments in [
        ("query_spans", {"limit": -1}),
        ("query_rollouts", {"offset": -5}),
        ("query_runs", {"limit": 2**64}),
        ("get_rollout", {"rollout_id": {"$ne": None}}),
        ("get_rollout", {}),
        ("query_spans", {"limit": "10"}),
        ("wait_for_rollouts", {"rollout_ids": ["x"], "timeout": None}),
        ("wait_for_rollouts", {"rollout_ids": ["x"], "timeout": 1e9}),
        ("wait_for_rollouts", {"rollout_ids": ["x"], "timeout": 0, "poll_s": 0}),
    ]:
        response = client.post(f"/api/store/{method}", content=json.dumps(arguments))
        check_answer("store API", response)
        assert response.status_code == 400, (method, arguments, response.text)
    deep = client.post("/api/store/query_spans", content=b'{"rollout_id": ' + b"[" * 2000 + b"]" * 2000 + b"}")
    check_answer("store API", deep)
    assert deep.status_code == 400 and "nested" in deep.json()["message"]
    assert client.post("/api/store/get_rollout", content=json.dumps({"rollout_id": "no-such"})).json() == {"result": None}


@pytest.fixture(autouse=True, scope="module")
def _after_all(client, store):
    yield
    response = client.post("/api/store/enqueue_rollout", content=json.dumps({"input": {"after": "fuzz"}}))
    assert response.status_code == 200
    rollout_id = response.json()["result"]["rollout_id"]
    assert store.get_rollout(rollout_id).input == {"after": "fuzz"}
