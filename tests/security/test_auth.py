"""Auth that holds, on each server with a token (store server/collector, dashboard, ``serve``): no
token and a wrong one are the same 401, the right one passes, a token in the query string is
refused even when right, failed attempts are rate-limited per client (429), static files and
streams are behind the token too, and the token never reaches the logs."""

from __future__ import annotations

import logging
import time

import httpx
import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from agl_core.dashboard import create_dashboard_app
from agl_core.dashboard.auth import COOKIE_NAME
from agl_core.server import BackgroundCollector
from agl_core.server.access import MAX_FAILURES, TokenGate
from agl_core.server.app import create_app
from agl_core.store import LightningStore

TOKEN = "s3cret-Token/+"
WRONG = "s3cret-Token/-"


@pytest.fixture()
def store():
    store = LightningStore("memory://")
    yield store
    store.close()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _four_cases(get, right_status: int = 200) -> None:
    """``get(headers, params)`` → response: no token, wrong token, right token, token in the query."""
    none, wrong = get({}, {}), get(_bearer(WRONG), {})
    assert none.status_code == wrong.status_code == 401
    assert none.content == wrong.content  # no hint of what was wrong
    assert get(_bearer(TOKEN), {}).status_code == right_status
    for params in ({"token": TOKEN}, {"api_key": TOKEN}, {"access_token": WRONG}):
        refused = get(_bearer(TOKEN), params)
        assert refused.status_code == 400 and "Authorization" in refused.text


def test_store_server(store, caplog):
    caplog.set_level(logging.DEBUG)
    with BackgroundCollector(store, token=TOKEN) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        for path, body in (("/api/store/query_rollouts", b"{}"), ("/v1/traces", b"{}")):
            _four_cases(
                lambda h, p, path=path, body=body: http.post(
                    path, content=body, headers={"content-type": "application/json", **h}, params=p
                )
            )
        assert http.get("/health").status_code == 200  # probes need no token
        assert http.post("/api/store/nope", headers=_bearer(WRONG)).status_code == 401  # unknown routes too
    assert TOKEN not in caplog.text


def test_store_server_refuses_websockets_without_the_token(store):
    client = TestClient(create_app(store, token=TOKEN))
    with pytest.raises(WebSocketDisconnect) as refused:
        with client.websocket_connect("/api/store/query_rollouts", headers=_bearer(WRONG)):
            pass
    assert refused.value.code == 1008


def test_failed_attempts_are_rate_limited_per_client(store):
    client = TestClient(create_app(store, token=TOKEN))
    for _ in range(MAX_FAILURES):
        assert client.post("/api/store/count_spans", headers=_bearer(WRONG)).status_code == 401
    limited = client.post("/api/store/count_spans", headers=_bearer(TOKEN))  # even the right token now
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    other = TestClient(create_app(store, token=TOKEN), client=("10.0.0.2", 5000))
    assert other.post("/api/store/count_spans", headers=_bearer(TOKEN)).status_code == 200  # per client


def test_the_rate_limit_window_passes():
    gate = TokenGate(TOKEN, max_failures=2, window_s=0.05)
    assert [gate.refusal("10.0.0.3", False) for _ in range(3)] == [401, 401, 429]
    assert gate.refusal("10.0.0.4", True) is None  # another client
    time.sleep(0.06)
    assert gate.refusal("10.0.0.3", True) is None


def test_dashboard(store, caplog):
    caplog.set_level(logging.DEBUG)
    client = TestClient(create_dashboard_app(store, token=TOKEN))
    for path in ("/api/runs", "/static/app.js", "/static/style.css", "/"):
        _four_cases(lambda h, p, path=path: client.get(path, headers=h, params=p))
    page = client.get("/")
    assert page.status_code == 401 and 'action="login"' in page.text  # a browser gets the login form
    assert client.get("/login").status_code == 200
    assert client.get("/", params={"token": TOKEN}).status_code == 400  # the old way in is refused
    assert TOKEN not in caplog.text


def test_dashboard_login_form_sets_a_session_cookie(store):
    client = TestClient(create_dashboard_app(store, token=TOKEN))
    wrong = client.post("/login", data={"token": WRONG}, follow_redirects=False)
    assert wrong.status_code == 401 and COOKIE_NAME not in wrong.headers.get("set-cookie", "")
    signed_in = client.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "./"
    cookie = signed_in.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie
    assert client.get("/api/runs").status_code == 200 and client.get("/static/app.js").status_code == 200
    client.cookies.clear()
    client.cookies.set(COOKIE_NAME, "forged")
    assert client.get("/api/runs").status_code == 401


@pytest.fixture(scope="module")
def model_server(tiny):
    from agl_trl.serve.app import ModelServer

    model, tokenizer = tiny
    with ModelServer(model, tokenizer, model_name="policy", store="memory://", api_key=TOKEN) as server:
        yield server


def test_serve(model_server, caplog):
    caplog.set_level(logging.DEBUG)
    root = model_server.base_url.removesuffix("/v1")
    chat = {"model": "policy", "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 2}
    with httpx.Client(base_url=root, timeout=30) as http:
        _four_cases(lambda h, p: http.get("/v1/models", headers=h, params=p))
        _four_cases(lambda h, p: http.post("/v1/chat/completions", json=chat, headers=h, params=p))
        streamed = {**chat, "stream": True}
        _four_cases(lambda h, p: http.post("/rollout/ro-1/attempt/at-1/v1/chat/completions", json=streamed, headers=h, params=p))
        with http.stream("POST", "/v1/chat/completions", json=streamed, headers=_bearer(TOKEN)) as stream:
            assert stream.status_code == 200 and "data: [DONE]" in stream.read().decode()
    assert TOKEN not in caplog.text


def test_grpc_receiver(store):
    grpc = pytest.importorskip("grpc")
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as pb
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as pb_grpc

    from agl_core.server.grpc_receiver import start_grpc_receiver

    server, port = start_grpc_receiver(store, "127.0.0.1", 0, token=TOKEN)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            export = pb_grpc.TraceServiceStub(channel).Export

            def code(metadata: tuple = ()) -> object:
                try:
                    export(pb.ExportTraceServiceRequest(), metadata=metadata, timeout=5)
                    return grpc.StatusCode.OK
                except grpc.RpcError as exc:
                    return exc.code()

            assert code() == code((("authorization", f"Bearer {WRONG}"),)) == grpc.StatusCode.UNAUTHENTICATED
            assert code((("authorization", f"Bearer {TOKEN}"),)) == grpc.StatusCode.OK
            for _ in range(MAX_FAILURES):
                code()
            assert code((("authorization", f"Bearer {TOKEN}"),)) == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        server.stop(grace=1).wait()
