"""A client that sends its headers and then stalls mid-body (slowloris) gets 408 within
`BODY_TIMEOUT_S` and frees its connection; other clients are served meanwhile."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from agl_core.server import BackgroundCollector, limits
from agl_core.store import LightningStore


def _stall(url: str, path: str) -> tuple[bytes, float]:
    """Declare a 1,000-byte JSON body, send 10 bytes of it, wait; the answer and how long it took."""
    host, port = url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=15) as conn:
        conn.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                     "Content-Length: 1000\r\n\r\n{\"resourc".encode())  # fmt: skip
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = conn.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer, time.monotonic() - started


@pytest.mark.parametrize("path", ["/v1/traces", "/api/store/query_rollouts"])
def test_a_stalled_body_is_408_and_others_are_served_meanwhile(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "BODY_TIMEOUT_S", 1.0)
    store = LightningStore("memory://")
    with BackgroundCollector(store) as server:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            result: list[tuple[bytes, float]] = []
            staller = threading.Thread(target=lambda: result.append(_stall(server.url, path)))
            staller.start()
            time.sleep(0.2)
            assert http.post("/api/store/query_rollouts", json={}).status_code == 200  # not blocked by the staller
            staller.join(15)
            answer, took = result[0]
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
            assert 0.9 <= took < 5
            assert http.get("/health").status_code == 200
    store.close()
