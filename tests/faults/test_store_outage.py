"""The store server goes away under a running `Runner` and comes back on the same port: the
workers wait and retry instead of dying, and every rollout is still finished exactly once (one
whose report was lost times out and is requeued)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from agl_core.runtime.runner import Runner
from agl_core.server import BackgroundCollector
from agl_core.store import LightningStore
from agl_core.store.sql import SqlStore
from agl_core.types import RolloutRequest
from tests.faults.conftest import report
from tests.faults.procs import wait_until

ROLLOUTS = 40


def test_runner_workers_survive_a_store_server_restart(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'store.db'}", heartbeat_timeout=2.0)
    ids = [
        r.rollout_id for r in store.enqueue_rollouts([RolloutRequest(input=i, max_attempts=3) for i in range(ROLLOUTS)])
    ]
    server = BackgroundCollector(store).start()
    port = int(server.url.rsplit(":", 1)[1])

    def agent(task: int, resources: object) -> float:
        time.sleep(0.05)
        return 1.0

    runner = Runner(agent, LightningStore(server.url), n_workers=3, heartbeat_interval=0.2).start()
    try:
        wait_until(lambda: len(store.query_rollouts(status="succeeded")) >= 5, 60, "five rollouts done")
        server.stop()
        time.sleep(1.5)  # the workers hit a closed port for a while
        server = BackgroundCollector(store, port=port).start()
        wait_until(lambda: len(store.query_rollouts(status="succeeded")) == ROLLOUTS, 90, "every rollout done")
        alive = sum(t.is_alive() for t in runner._threads)
    finally:
        runner.stop()
        server.stop()
    attempts = Counter(len(store.query_attempts(rid)) for rid in ids)
    succeeded = Counter(sum(a.status == "succeeded" for a in store.query_attempts(rid)) for rid in ids)
    report(f"store server restarted under a runner: {ROLLOUTS}/{ROLLOUTS} succeeded, workers alive {alive}/3, "
           f"attempts per rollout {dict(sorted(attempts.items()))}")  # fmt: skip
    assert alive == 3
    assert succeeded == Counter({1: ROLLOUTS})
