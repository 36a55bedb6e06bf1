"""``collector --ssl-certfile/--ssl-keyfile``: the store server over HTTPS with a self-signed
certificate made here; clients that trust it (``SSL_CERT_FILE``) work, others are refused."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from agl_core.store.http_client import HttpStore
from tests.faults.procs import CLI
from tests.scale.test_runner_cmd import AGENT


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_the_collector_serves_https_to_clients_that_trust_its_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path)
    (tmp_path / "scale_agent.py").write_text(AGENT)
    args = [CLI, "collector", "--port", "0", "--store", f"sqlite:///{tmp_path / 'store.db'}"]
    proc = subprocess.Popen(
        args + ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"https://127\.0\.0\.1:\d+", line)
        assert match, line
        url = match.group(0)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{url}/health")  # an untrusted certificate is refused
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url.replace('https', 'http')}/health")  # no plain HTTP on that port

        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        store = HttpStore(url)
        ids = [store.enqueue_rollout({"i": i, "sleep": 0.0}, max_attempts=3).rollout_id for i in range(3)]
        runner = [CLI, "runner", "--store", url, "--agent", "scale_agent:agent", "--exit-when-idle", "0.5"]
        subprocess.run(runner, cwd=tmp_path, env=os.environ, check=True, timeout=120, capture_output=True)
        done = store.wait_for_rollouts(ids, timeout=10)
        assert [r.status for r in done] == ["succeeded"] * 3
        assert all(any(s.name == "work" for s in store.query_spans(rid)) for rid in ids)  # spans came over TLS too
        store.close()
    finally:
        proc.terminate()
        proc.wait(15)
