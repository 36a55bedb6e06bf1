"""Store throughput: ours against agentlightning 0.3.0 (the peer), measured in the same run.

Figures (each printed as ours, peer, ours/peer):
  * in-process cycle: enqueue → dequeue → 10 spans → update_attempt(succeeded), rollouts/s
    (ours: SQLite file; also memory:// for reference; peer: its in-memory store);
  * the same cycle over HTTP through the store server (ours: `agent-lightning collector` on a
    SQLite file, in a subprocess; peer: `agl store --backend memory`);
  * OTLP/HTTP ingest of 20,000 spans in 512-span batches with the stock OTLPSpanExporter,
    spans/s, verified by counting what the store holds (ours: collector on a SQLite file, and on
    memory:// as the peer's server runs).

The peer runs from /work/shared/peer-bench (``PEER_BENCH``) in its own venv, made by its
``setup_peer_venv.sh``; when that fails the peer columns are skipped with the reason.
Usage: ``.venv/bin/python benchmarks/store.py`` (env: N_CYCLE, N_HTTP_CYCLE, N_OTLP, SKIP_PEER=1).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from agl_core.store.base import LightningStore
from agl_core.tracing import semconv
from agl_core.types import Span

ROOT = Path(__file__).resolve().parents[1]
PEER_BENCH = Path(os.environ.get("PEER_BENCH", ROOT.parent / "shared" / "peer-bench"))
N_CYCLE = int(os.environ.get("N_CYCLE", 2000))
N_HTTP_CYCLE = int(os.environ.get("N_HTTP_CYCLE", 500))
N_OTLP = int(os.environ.get("N_OTLP", 20000))
OTLP_BATCH = 512
SPANS_PER_ROLLOUT = 10
PEER_TIMEOUT_S = 180


def llm_attributes(i: int) -> dict:
    """Ten attributes of an LLM call (the same shape and size as the peer's payload)."""
    return {
        "gen_ai.system": "openai",
        "gen_ai.request.model": "qwen2.5-1.5b",
        "gen_ai.request.temperature": 0.7,
        "gen_ai.request.max_tokens": 512,
        "gen_ai.usage.prompt_tokens": 100 + i % 50,
        "gen_ai.usage.completion_tokens": 20 + i % 30,
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": "What is 6*7?",
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.content": "42",
    }


def rollout_spans(rollout_id: str, attempt_id: str, n: int) -> list[Span]:
    trace_id, root = os.urandom(16).hex(), os.urandom(8).hex()
    now = time.time()
    return [
        Span(
            trace_id=trace_id,
            span_id=root if k == 0 else os.urandom(8).hex(),
            parent_id=None if k == 0 else root,
            name="chat qwen2.5-1.5b" if k else "invoke_agent bench",
            start_time=now + k * 1e-3,
            end_time=now + k * 1e-3 + 5e-4,
            attributes=llm_attributes(k),
            rollout_id=rollout_id,
            attempt_id=attempt_id,
        )
        for k in range(n)
    ]


def cycle(store: LightningStore, n: int) -> float:
    """Rollouts/s for enqueue → dequeue → 10 spans → succeeded, checked at the end."""
    started = time.perf_counter()
    for i in range(n):
        store.enqueue_rollout({"task_id": i, "question": "What is 6*7?"}, mode="train")
        claimed = store.dequeue_rollout(worker_id="bench-worker")
        assert claimed is not None
        store.add_spans(rollout_spans(claimed.rollout_id, claimed.attempt.attempt_id, SPANS_PER_ROLLOUT))
        store.update_attempt(claimed.rollout_id, claimed.attempt.attempt_id, status="succeeded")
    rate = n / (time.perf_counter() - started)
    assert store.count_rollouts(status="succeeded") >= n
    return rate


def otel_spans(n: int, rollout_id: str, attempt_id: str) -> list[ReadableSpan]:
    resource = Resource.create(
        {"service.name": "store-bench", semconv.AGL_ROLLOUT_ID: rollout_id, semconv.AGL_ATTEMPT_ID: attempt_id}
    )
    scope = InstrumentationScope("store-bench", "0")
    trace_id = int.from_bytes(os.urandom(16), "big")
    now = time.time_ns()
    return [
        ReadableSpan(
            name=f"ingest.{i % 7}",
            context=SpanContext(trace_id, i + 1, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED)),
            resource=resource,
            attributes=llm_attributes(i),
            kind=SpanKind.INTERNAL,
            status=Status(StatusCode.OK),
            start_time=now + i * 1000,
            end_time=now + i * 1000 + 500,
            instrumentation_scope=scope,
        )
        for i in range(n)
    ]


def otlp_ingest(url: str, store: LightningStore) -> tuple[float, int]:
    """Spans/s for N_OTLP spans sent in 512-span batches; returns (rate, spans stored)."""
    rollout = store.start_rollout({"task": "otlp-ingest"}, worker_id="bench")
    spans = otel_spans(N_OTLP, rollout.rollout_id, rollout.attempt.attempt_id)
    exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", timeout=60)
    started = time.perf_counter()
    for i in range(0, len(spans), OTLP_BATCH):
        assert exporter.export(spans[i : i + OTLP_BATCH]) == SpanExportResult.SUCCESS
    rate = N_OTLP / (time.perf_counter() - started)
    exporter.shutdown()
    return rate, store.count_spans(rollout.rollout_id)


class CollectorProcess:
    """``agent-lightning collector`` on a SQLite file, as its own process (as users run it)."""

    def __init__(self, store_url: str) -> None:
        from tests.fixtures.scripted_openai import free_port

        self.url = f"http://127.0.0.1:{free_port()}"
        port = self.url.rsplit(":", 1)[1]
        self._proc = subprocess.Popen(
            [sys.executable, "-c", "from agl_core.cli.main import main; main()", "collector",
             "--host", "127.0.0.1", "--port", port, "--store", store_url],
            cwd=ROOT,
        )

    def __enter__(self) -> "CollectorProcess":
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError("collector exited")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("collector did not start")

    def __exit__(self, *exc: object) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=15)


def measure_ours(workdir: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    with LightningStore(f"sqlite:///{workdir / 'inproc.db'}") as store:
        cycle(store, 20)  # warm-up
        out["cycle_sqlite"] = cycle(store, N_CYCLE)
    with LightningStore("memory://") as store:
        cycle(store, 20)
        out["cycle_memory"] = cycle(store, N_CYCLE)
    with CollectorProcess(f"sqlite:///{workdir / 'served.db'}") as server, LightningStore(server.url) as client:
        cycle(client, 10)
        out["cycle_http"] = cycle(client, N_HTTP_CYCLE)
        out["otlp_spans_per_s"], stored = otlp_ingest(server.url, client)
        out["otlp_spans_stored"] = stored
        assert stored == N_OTLP, f"only {stored} of {N_OTLP} spans stored"
    with CollectorProcess("memory://") as server, LightningStore(server.url) as client:
        out["otlp_memory_spans_per_s"], stored = otlp_ingest(server.url, client)
        assert stored == N_OTLP, f"only {stored} of {N_OTLP} spans stored"
    return out


def run_peer_script(python: str, script: str, env: dict[str, str]) -> dict:
    proc = subprocess.run(
        [python, str(PEER_BENCH / script)],
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", **env},
        capture_output=True,
        text=True,
        timeout=PEER_TIMEOUT_S,
        cwd=tempfile.gettempdir(),
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"{script} printed no RESULT:\n{(proc.stdout + proc.stderr)[-2000:]}")


def measure_peer() -> tuple[dict[str, float] | None, str]:
    if os.environ.get("SKIP_PEER"):
        return None, "SKIP_PEER is set"
    setup = PEER_BENCH / "setup_peer_venv.sh"
    if not setup.exists():
        return None, f"no peer bench at {PEER_BENCH}"
    try:
        made = subprocess.run(["bash", str(setup)], capture_output=True, text=True, timeout=900)
        python = made.stdout.strip().splitlines()[-1] if made.returncode == 0 and made.stdout.strip() else ""
        if not python or not Path(python).exists():
            return None, f"peer venv could not be set up: {made.stderr.strip()[-300:]}"
        from tests.fixtures.scripted_openai import free_port

        inmem = run_peer_script(python, "bench_store_inmemory.py", {"N_CYCLE": str(N_CYCLE), "N_ENQUEUE": "1000"})
        http = run_peer_script(
            python, "bench_store_http.py",
            {"PORT": str(free_port()), "N_CYCLE": str(N_HTTP_CYCLE), "N_OTLP": str(N_OTLP)},
        )
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        return None, f"peer run failed: {exc}"
    return {
        "cycle_memory": inmem["cycle_add_many_rollouts_per_s"],
        "cycle_http": http["http_cycle_rollouts_per_s"],
        "otlp_spans_per_s": http["otlp_spans_per_s"],
        "otlp_spans_stored": http.get("otlp_spans_stored"),
    }, python


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="agl-store-bench-") as tmp:
        os.environ.setdefault("AGL_HOME", str(Path(tmp) / "home"))
        ours = measure_ours(Path(tmp))
    peer, note = measure_peer()
    rows = [
        ("cycle in-process, rollouts/s (ours: sqlite file)", "cycle_sqlite", "cycle_memory"),
        ("cycle in-process, rollouts/s (ours: memory://)", "cycle_memory", "cycle_memory"),
        ("cycle over HTTP, rollouts/s", "cycle_http", "cycle_http"),
        (f"OTLP ingest, spans/s ({N_OTLP} in {OTLP_BATCH}-span batches; ours: sqlite file)", "otlp_spans_per_s", "otlp_spans_per_s"),
        ("OTLP ingest, spans/s (ours: memory://)", "otlp_memory_spans_per_s", "otlp_spans_per_s"),
    ]
    print(f"\nstore benchmark (N_CYCLE={N_CYCLE}, N_HTTP_CYCLE={N_HTTP_CYCLE}, N_OTLP={N_OTLP})")
    print(f"peer: agentlightning 0.3.0 ({note})" if peer else f"peer: skipped — {note}")
    print("| figure | ours | peer | ours/peer |\n|---|---:|---:|---:|")
    for label, mine, theirs in rows:
        if peer:
            print(f"| {label} | {ours[mine]:,.0f} | {peer[theirs]:,.0f} | {ours[mine] / peer[theirs]:.2f}x |")
        else:
            print(f"| {label} | {ours[mine]:,.0f} | – | – |")
    stored_peer = peer.get("otlp_spans_stored") if peer else None
    print(f"OTLP spans stored: ours {ours['otlp_spans_stored']}/{N_OTLP}" + (f", peer {stored_peer}/{N_OTLP}" if peer else ""))
    print("RESULT " + json.dumps({"ours": ours, "peer": peer}, sort_keys=True))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
