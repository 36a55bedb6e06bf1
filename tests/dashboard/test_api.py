"""The dashboard's JSON API over a real SQLite store, through Starlette's TestClient."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from agl_core.dashboard import create_dashboard_app, serve_dashboard
from agl_core.server.access import AccessError
from agl_core.types import Run
from tests.dashboard.demo_store import (
    HELDOUT_STEPS,
    LIVE_RUN_ID,
    ROLLOUTS,
    RUN_ID,
    TRACE_SPAN_NAMES,
    TRAIN_STEPS,
)


@pytest.fixture
def client(demo_store):
    return TestClient(create_dashboard_app(demo_store))


def test_index_and_assets_are_served_without_a_cdn(client):
    page = client.get("/")
    assert page.status_code == 200
    assert "static/app.js" in page.text and "http" not in page.text.split("<body>")[1]
    for asset in ("app.js", "charts.js", "style.css"):
        assert client.get(f"/static/{asset}").status_code == 200


def test_runs_list_shows_steps_and_best_heldout_reward(client):
    body = client.get("/api/runs").json()
    assert body["total"] == 2
    runs = {r["run_id"]: r for r in body["items"]}
    done = runs[RUN_ID]
    assert (done["algorithm"], done["status"], done["steps"]) == ("grpo", "finished", TRAIN_STEPS)
    assert done["best_heldout_reward"] == pytest.approx(0.1 + 0.06 * max(HELDOUT_STEPS))
    assert runs[LIVE_RUN_ID]["best_heldout_reward"] is None


def test_runs_are_paged(client):
    first = client.get("/api/runs", params={"limit": 1}).json()
    second = client.get("/api/runs", params={"limit": 1, "offset": 1}).json()
    assert first["total"] == second["total"] == 2
    assert len(first["items"]) == len(second["items"]) == 1
    assert first["items"][0]["run_id"] != second["items"][0]["run_id"]


def test_metrics_series_merge_train_and_heldout_records_of_a_step(client):
    body = client.get(f"/api/runs/{RUN_ID}/metrics").json()
    series = body["series"]
    per_set = {"heldout_reward_sampled/math", "heldout_reward_sampled/coding", "heldout_n/math", "heldout_n/coding"}
    assert set(series) == {"reward_mean", "heldout_reward", "loss", "kl", "tokens_per_s", *per_set}
    assert [p[0] for p in series["loss"]] == list(range(TRAIN_STEPS))
    assert [p[0] for p in series["heldout_reward"]] == list(HELDOUT_STEPS)
    assert body["last_step"] == TRAIN_STEPS - 1 and body["status"] == "finished"


def test_metrics_since_step_returns_only_new_steps(client, demo_store):
    demo_store.add_metrics(LIVE_RUN_ID, 1, {"reward_mean": 0.4})
    demo_store.add_metrics(LIVE_RUN_ID, 2, {"reward_mean": 0.5})
    body = client.get(f"/api/runs/{LIVE_RUN_ID}/metrics", params={"since_step": 1}).json()
    assert body["series"] == {"reward_mean": [[1, 0.4], [2, 0.5]]}
    assert body["status"] == "running"


def test_run_detail_and_unknown_run(client):
    detail = client.get(f"/api/runs/{RUN_ID}").json()
    assert detail["config"] == {"lr": 1e-5, "group_size": 4}
    assert detail["rollouts"] == ROLLOUTS
    missing = client.get("/api/runs/nope")
    assert missing.status_code == 404 and "nope" in missing.json()["error"]


def test_rollouts_paging_covers_every_rollout_once(client):
    seen = []
    for offset in range(0, ROLLOUTS, 10):
        page = client.get("/api/rollouts", params={"limit": 10, "offset": offset}).json()
        assert page["total"] == ROLLOUTS
        seen += [r["rollout_id"] for r in page["items"]]
    assert len(seen) == len(set(seen)) == ROLLOUTS


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"status": "failed"}, ROLLOUTS // 6),
        ({"status": "succeeded"}, ROLLOUTS - ROLLOUTS // 6),
        ({"mode": "val"}, ROLLOUTS // 4),
        ({"agent": "critic"}, ROLLOUTS // 2),
        ({"agent": "critic", "status": "failed"}, ROLLOUTS // 6),
        ({"agent": "nobody"}, 0),
        ({"run_id": RUN_ID}, ROLLOUTS),
    ],
)
def test_rollout_filters(client, params, expected):
    body = client.get("/api/rollouts", params={**params, "limit": 100}).json()
    assert body["total"] == len(body["items"]) == expected
    for row in body["items"]:
        for key, value in params.items():
            assert row[key] == value


def test_rollout_rows_carry_reward_and_duration(client, demo_store):
    rows = client.get("/api/rollouts", params={"status": "succeeded", "limit": 100}).json()["items"]
    assert {r["reward"] for r in rows} == {0.0, 1.0}  # settled from the agl.reward spans
    assert all(r["duration_s"] is not None and r["duration_s"] >= 0 for r in rows)
    failed = client.get("/api/rollouts", params={"status": "failed", "limit": 1}).json()["items"][0]
    detail = client.get(f"/api/rollouts/{failed['rollout_id']}").json()
    assert detail["attempts"][0]["error"] == "tool crashed" and detail["span_count"] == 0


def test_bad_query_parameters_are_400(client):
    assert client.get("/api/rollouts", params={"limit": 0}).status_code == 400
    assert client.get("/api/rollouts", params={"limit": "ten"}).status_code == 400
    assert client.get("/api/rollouts", params={"limit": 10_000}).status_code == 400
    assert client.get("/api/rollouts", params={"status": "weird"}).status_code == 400


def test_trace_spans_parse_genai_content_and_hide_token_arrays(client, demo_store):
    rollout_id = demo_store.demo_rollouts["solver"][1]
    body = client.get(f"/api/rollouts/{rollout_id}/spans").json()
    assert body["total"] == len(TRACE_SPAN_NAMES)
    assert [s["name"] for s in body["items"]] == TRACE_SPAN_NAMES
    agent, first_chat, tool, _, reward = body["items"]
    assert (agent["kind"], first_chat["kind"], tool["kind"], reward["kind"]) == ("agent", "llm", "tool", "reward")
    assert first_chat["parent_id"] == agent["span_id"]
    assert first_chat["input_messages"][0]["parts"][0]["content"].startswith("What is")
    assert first_chat["output_messages"][0]["parts"][0]["type"] == "tool_call"
    assert (first_chat["input_tokens"], first_chat["output_tokens"]) == (42, 9)
    assert first_chat["attributes"]["agl.response.token_ids"] == "[9 values]"
    assert tool["tool"] == "calculator" and tool["tool_arguments"] == {"expr": "2*7"}
    assert reward["reward"] == 1.0
    paged = client.get(f"/api/rollouts/{rollout_id}/spans", params={"limit": 2, "offset": 4}).json()
    assert [s["name"] for s in paged["items"]] == ["agl.reward"] and paged["total"] == 5


def test_resources_history_newest_first_with_scores_and_no_secrets(client):
    body = client.get("/api/resources", params={"limit": 2}).json()
    assert body["total"] == 3 and [u["version"] for u in body["items"]] == [3, 2]
    assert "api_key" not in body["items"][0]["resources"]["policy"]
    assert "sk-secret" not in client.get("/api/resources").text
    older = client.get("/api/resources", params={"limit": 2, "offset": 2}).json()["items"]
    assert older[0]["metadata"] == {"score": 0.41}
    assert older[0]["resources"]["system_prompt"]["template"] == "Solve: {question}"


def test_summary_counts(client):
    body = client.get("/api/summary").json()
    assert body["runs"] == 2 and body["spans"] == len(TRACE_SPAN_NAMES) * (ROLLOUTS - ROLLOUTS // 6)
    assert body["rollouts"]["failed"] == ROLLOUTS // 6 and body["resources_versions"] == 3


def test_a_running_run_turns_finished(client, demo_store):
    demo_store.upsert_run(Run(run_id=LIVE_RUN_ID, algorithm="apo", status="finished"))
    assert client.get(f"/api/runs/{LIVE_RUN_ID}/metrics").json()["status"] == "finished"


# --- access control ------------------------------------------------------------------------------


def test_token_is_required_on_every_request(demo_store):
    client = TestClient(create_dashboard_app(demo_store, token="s3cret"))
    for path in ("/", "/api/runs", "/static/app.js"):
        assert client.get(path).status_code == 401
    assert client.get("/api/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/runs", params={"token": "s3cret"}).status_code == 400  # never in a URL
    assert client.get("/api/runs", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_the_login_form_sets_a_cookie_for_later_requests(demo_store):
    """(More in tests/security/test_auth.py.)"""
    client = TestClient(create_dashboard_app(demo_store, token="s3cret"))
    page = client.post("/login", data={"token": "s3cret"})
    assert page.status_code == 200 and "agl_dashboard_session" in client.cookies
    assert client.get("/api/runs").status_code == 200  # the cookie jar now holds it
    client.cookies.clear()
    assert client.get("/api/runs").status_code == 401


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "dashboard.example"])
def test_serve_refuses_a_public_bind_without_a_token(host, tmp_path):
    with pytest.raises(AccessError, match="AGL_DASHBOARD_TOKEN"):
        serve_dashboard(host=host, port=0, store_url=f"sqlite:///{tmp_path / 's.db'}")
    assert not (tmp_path / "s.db").exists()  # refused before touching anything


def test_only_loopback_binds_go_without_a_token():
    from agl_core.server.access import check_bind

    for host in ("127.0.0.1", "localhost", "::1"):
        check_bind(host, None, service="the dashboard", token_env="AGL_DASHBOARD_TOKEN")
    check_bind("0.0.0.0", "tok", service="the dashboard", token_env="AGL_DASHBOARD_TOKEN")
    with pytest.raises(AccessError):
        check_bind("0.0.0.0", "", service="the dashboard", token_env="AGL_DASHBOARD_TOKEN")


def test_serve_dashboard_serves_a_store_url_and_honours_the_environment_token(tmp_path, demo_store):
    """The real entry point in its own process: uvicorn on loopback, token from the environment."""
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = f"from agl_core.dashboard import serve_dashboard; serve_dashboard('127.0.0.1', {port}, {demo_store.url!r})"
    env = {**os.environ, "AGL_DASHBOARD_TOKEN": "from-env"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}/api/runs"
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()
            try:
                refused = httpx.get(url, timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "dashboard did not come up"
                time.sleep(0.1)
        assert refused.status_code == 401
        allowed = httpx.get(url, headers={"Authorization": "Bearer from-env"}, timeout=5)
        assert allowed.status_code == 200 and allowed.json()["total"] == 2
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_dashboard_watches_a_remote_store_server(demo_store):
    """Same API answers when the store is a client of `agent-lightning collector` (http://…)."""
    from agl_core.server import BackgroundCollector
    from agl_core.store import LightningStore

    with BackgroundCollector(demo_store) as server:
        remote = LightningStore(server.url)
        try:
            client = TestClient(create_dashboard_app(remote))
            assert client.get("/api/runs").json()["total"] == 2
            critic = client.get("/api/rollouts", params={"agent": "critic", "status": "failed"}).json()
            assert critic["total"] == ROLLOUTS // 6
            rollout_id = demo_store.demo_rollouts["solver"][0]
            spans = client.get(f"/api/rollouts/{rollout_id}/spans").json()
            assert [s["name"] for s in spans["items"]] == TRACE_SPAN_NAMES
        finally:
            remote.close()
