"""Dashboard API latency on a big store: 10,000 rollouts and 1,000,000 spans.

    .venv/bin/python benchmarks/dashboard.py [--rebuild] [--calls 7]

The store is built once through the public store API (bulk `enqueue_rollouts`, then a claim
and a result per rollout, spans through `add_spans` in batches) and cached as a SQLite file
under the temp dir. Every page's API call is then timed through the ASGI app; the median must
stay under one second.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from starlette.testclient import TestClient

from agl_core.dashboard import create_dashboard_app
from agl_core.store import LightningStore
from agl_core.tracing import semconv
from agl_core.types import PromptTemplate, RolloutRequest, Run, Span

ROLLOUTS = 10_000
SPANS_PER_ROLLOUT = 100
STEPS = 500
AGENTS = ("planner", "solver", "critic")
RUN_ID = "bench-run"
BUDGET_S = 1.0
CACHE = Path(tempfile.gettempdir()) / "agl-dashboard-bench" / f"store-{ROLLOUTS}x{SPANS_PER_ROLLOUT}.db"


def _rollout_spans(rollout_id: str, attempt_id: str, n: int, t0: float) -> list[Span]:
    """An agent span over alternating LLM calls and tool calls, closed by a reward span."""
    trace = f"{n + 1:032x}"
    ids = [f"{n + 1:08x}{i:08x}" for i in range(SPANS_PER_ROLLOUT)]
    base = {semconv.AGL_ROLLOUT_ID: rollout_id, semconv.AGL_ATTEMPT_ID: attempt_id}

    def make(i: int, name: str, attrs: dict) -> Span:
        return Span(
            trace_id=trace, span_id=ids[i], parent_id=ids[0] if i else None, name=name,
            start_time=t0 + i * 0.01, end_time=t0 + i * 0.01 + (1.0 if i == 0 else 0.008),
            attributes={**base, **attrs}, rollout_id=rollout_id, attempt_id=attempt_id,
        )

    spans = [make(0, "invoke_agent solver", {semconv.GEN_AI_OPERATION_NAME: semconv.OP_INVOKE_AGENT, semconv.GEN_AI_AGENT_NAME: "solver"})]
    for i in range(1, SPANS_PER_ROLLOUT - 1):
        if i % 2:
            spans.append(make(i, "chat bench-model", {
                semconv.GEN_AI_OPERATION_NAME: semconv.OP_CHAT, semconv.GEN_AI_REQUEST_MODEL: "bench-model",
                semconv.GEN_AI_INPUT_MESSAGES: json.dumps([{"role": "user", "parts": [{"type": "text", "content": f"step {i} of task {n}"}]}]),
                semconv.GEN_AI_OUTPUT_MESSAGES: json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "ok"}]}]),
                semconv.GEN_AI_USAGE_INPUT_TOKENS: 40 + i, semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 5,
            }))
        else:
            spans.append(make(i, "execute_tool lookup", {
                semconv.GEN_AI_OPERATION_NAME: semconv.OP_EXECUTE_TOOL, semconv.GEN_AI_TOOL_NAME: "lookup",
                semconv.GEN_AI_TOOL_CALL_RESULT: str(i),
            }))
    spans.append(make(SPANS_PER_ROLLOUT - 1, semconv.SPAN_REWARD, {semconv.AGL_REWARD_VALUE: float(n % 2)}))
    return spans


def build_store(path: Path) -> None:
    partial = path.with_suffix(".partial")
    for stale in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
        stale.unlink(missing_ok=True)
    store = LightningStore(f"sqlite:///{partial}")
    t0 = time.time()
    for version in range(1, 21):
        store.add_resources({"system_prompt": PromptTemplate(template=f"Prompt version {version}: {{question}}")}, {"score": version / 20})
    store.upsert_run(Run(run_id=RUN_ID, algorithm="grpo"))
    for step in range(STEPS):
        store.add_metrics(RUN_ID, step, {"reward_mean": step / STEPS, "loss": 1 / (step + 1), "kl": 0.001 * step, "tokens_per_s": 1000.0})
        if step % 10 == 0:
            store.add_metrics(RUN_ID, step, {"heldout_reward": step / STEPS})
    store.enqueue_rollouts([
        RolloutRequest(input={"task": n}, mode="val" if n % 5 == 0 else "train", run_id=RUN_ID, metadata={"agent": AGENTS[n % 3]})
        for n in range(ROLLOUTS)
    ])
    batch: list[Span] = []
    for n in range(ROLLOUTS):
        claimed = store.dequeue_rollout("bench-worker")
        assert claimed is not None
        batch += _rollout_spans(claimed.rollout_id, claimed.attempt.attempt_id, n, t0 + n)
        store.update_attempt(claimed.rollout_id, claimed.attempt.attempt_id, "failed" if n % 10 == 9 else "succeeded", reward=float(n % 2))
        if len(batch) >= 50_000:
            store.add_spans(batch)
            batch = []
            print(f"  {n + 1:,} rollouts, {(n + 1) * SPANS_PER_ROLLOUT:,} spans ({time.time() - t0:.0f} s)", flush=True)
    store.add_spans(batch)
    store.upsert_run(Run(run_id=RUN_ID, algorithm="grpo", status="finished"))
    store.close()
    partial.rename(path)
    print(f"built {path} in {time.time() - t0:.0f} s ({path.stat().st_size / 1e6:.0f} MB)")


def time_pages(store: LightningStore, calls: int) -> dict[str, float]:
    client = TestClient(create_dashboard_app(store))
    some = client.get("/api/rollouts", params={"limit": 1, "offset": ROLLOUTS // 2}).json()["items"][0]["rollout_id"]
    pages = {
        "summary": ("/api/summary", {}),
        "runs list": ("/api/runs", {}),
        "run detail": (f"/api/runs/{RUN_ID}", {}),
        "run metrics (all steps)": (f"/api/runs/{RUN_ID}/metrics", {}),
        "run metrics (live poll)": (f"/api/runs/{RUN_ID}/metrics", {"since_step": STEPS - 1}),
        "rollouts page 1": ("/api/rollouts", {"limit": 50}),
        "rollouts last page": ("/api/rollouts", {"limit": 50, "offset": ROLLOUTS - 50}),
        "rollouts status=failed": ("/api/rollouts", {"status": "failed", "limit": 50}),
        "rollouts mode+agent": ("/api/rollouts", {"mode": "val", "agent": "critic", "limit": 50, "offset": 100}),
        "rollout detail": (f"/api/rollouts/{some}", {}),
        "trace spans": (f"/api/rollouts/{some}/spans", {"limit": 500}),
        "resources": ("/api/resources", {"limit": 20}),
    }
    medians = {}
    for label, (path, params) in pages.items():
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            response = client.get(path, params=params)
            times.append(time.perf_counter() - start)
            assert response.status_code == 200, (label, response.text)
        medians[label] = statistics.median(times)
    return medians


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached store")
    parser.add_argument("--calls", type=int, default=7, help="timed calls per page")
    args = parser.parse_args()
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    if args.rebuild or not CACHE.exists():
        print(f"building a store with {ROLLOUTS:,} rollouts and {ROLLOUTS * SPANS_PER_ROLLOUT:,} spans …")
        build_store(CACHE)
    store = LightningStore(f"sqlite:///{CACHE}")
    assert store.count_spans() == ROLLOUTS * SPANS_PER_ROLLOUT and store.count_rollouts() == ROLLOUTS
    medians = time_pages(store, args.calls)
    store.close()
    print(f"\ndashboard API, median of {args.calls} calls ({ROLLOUTS:,} rollouts, {ROLLOUTS * SPANS_PER_ROLLOUT:,} spans):")
    for label, seconds in medians.items():
        print(f"  {label:<26} {seconds * 1000:8.1f} ms  {'ok' if seconds < BUDGET_S else 'OVER BUDGET'}")
    slow = [label for label, seconds in medians.items() if seconds >= BUDGET_S]
    assert not slow, f"over {BUDGET_S} s median: {slow}"
    return 0


if __name__ == "__main__":
    sys.exit(main())
