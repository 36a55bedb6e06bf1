"""What only the HTTP store does: the server's answers to bad calls, the client's errors, and the
client forwarding the whole API (the behaviour every backend shares is in test_store_contract)."""

from __future__ import annotations

import httpx
import pytest

from agl_core.server import BackgroundCollector
from agl_core.store.base import StoreError, store_methods
from agl_core.store.http_client import HttpStore
from agl_core.store.sql import SqlStore


def test_http_api_refuses_bad_calls(tmp_path):
    backing = SqlStore("memory://")
    with BackgroundCollector(backing) as server:
        base = f"{server.url}/api/store"
        unknown = httpx.post(f"{base}/drop_everything", json={})
        assert unknown.status_code == 404 and "enqueue_rollouts" in unknown.json()["message"]
        typo = httpx.post(f"{base}/enqueue_rollouts", json={"items": [{"input": 1, "priority": 9}]})
        assert typo.status_code == 400 and "priority" in typo.json()["message"]
        missing = httpx.post(f"{base}/update_attempt", json={"rollout_id": "r", "attempt_id": "a", "status": "failed"})
        assert missing.status_code == 409 and missing.json()["error"] == "StoreError"
        bad = httpx.post(f"{base}/get_rollout", json={"rollout_id": "x", "surprise": 1})
        assert bad.status_code == 400 and "surprise" in bad.json()["message"]
        assert httpx.post(f"{base}/get_rollout", content=b"{oops").status_code == 400
        assert httpx.post(f"{base}/add_spans", json={"spans": [{"name": "no ids"}]}).status_code == 400
        assert httpx.post(f"{base}/count_spans", json={}).json() == {"result": 0}
    backing.close()


def test_unreachable_server_is_a_store_error():
    from tests.fixtures.scripted_openai import free_port

    client = HttpStore(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(StoreError, match="unreachable"):
        client.count_rollouts()
    client.close()


def test_client_forwards_every_store_method_the_interface_does_not_compose():
    assert {m for m in store_methods() if m not in vars(HttpStore)} == {"enqueue_rollout", "heartbeat"}
