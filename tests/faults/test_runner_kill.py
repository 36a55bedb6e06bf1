"""``kill -9`` of a runner process mid-rollout: the store times the silent attempt out, requeues
the rollout and another runner finishes it, exactly once (`agl_core.store.rules`)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from agl_core.runtime.runner import Runner, rollout
from agl_core.store.sql import SqlStore
from agl_core.types import RolloutRequest
from tests.faults.conftest import report
from tests.faults.procs import kill9, wait_until

ROLLOUTS = 6
HEARTBEAT_TIMEOUT_S = 2.0  # B beats every 0.2 s: ample margin on a loaded machine


def test_a_killed_runners_rollout_is_requeued_and_finished_once_by_another(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runner.db'}"
    store = SqlStore(url, heartbeat_timeout=HEARTBEAT_TIMEOUT_S)
    ids = [r.rollout_id for r in store.enqueue_rollouts([RolloutRequest(input=i, max_attempts=2) for i in range(ROLLOUTS)])]
    claimed = tmp_path / "claimed"
    claimed.mkdir()
    victim = subprocess.Popen([sys.executable, "-m", "tests.faults.hanging_runner", url, str(claimed)])
    try:
        wait_until(lambda: any(claimed.iterdir()), 60, "the first runner claims a rollout")
        [marker] = claimed.iterdir()
        start = store.query_attempts(marker.name)[0].start_time
        wait_until(lambda: (store.query_attempts(marker.name)[0].last_heartbeat or 0) > start, 10, "a heartbeat")
    finally:
        kill9(victim)
    lost_rollout, lost_attempt = marker.name, marker.read_text()

    finished: Counter[Any] = Counter()
    lock = threading.Lock()

    @rollout(name="finishes")
    def finishes(task: Any, resources: dict[str, Any]) -> float:
        with lock:
            finished[task] += 1
        return 1.0

    with Runner(finishes, store, n_workers=2, heartbeat_interval=0.2):
        done = store.wait_for_rollouts(ids, timeout=30)
    # the dead runner's report, should it ever arrive, changes nothing
    late = store.update_attempt(lost_rollout, lost_attempt, "succeeded", reward=0.0)

    attempts = {rid: store.query_attempts(rid) for rid in ids}
    per_rollout = Counter(len(a) for a in attempts.values())
    report(
        f"runner kill -9: {len(done)}/{ROLLOUTS} rollouts succeeded, attempts per rollout "
        + ", ".join(f"{n} attempt(s): {count} rollout(s)" for n, count in sorted(per_rollout.items()))
        + f"; the killed one: {[a.status for a in attempts[lost_rollout]]}; agent runs per task {sorted(finished.values())}"
    )
    assert [r.status for r in done] == ["succeeded"] * ROLLOUTS
    assert all(r.final_reward == 1.0 for r in done)
    assert sorted(finished) == list(range(ROLLOUTS)) and set(finished.values()) == {1}  # each finished exactly once
    first, second = attempts[lost_rollout]
    assert (first.attempt_id, first.status, second.status) == (lost_attempt, "timeout", "succeeded")
    assert late.status == "timeout" and store.get_rollout(lost_rollout).final_reward == 1.0  # type: ignore[union-attr]
    assert all(len(a) == 1 and a[0].status == "succeeded" for rid, a in attempts.items() if rid != lost_rollout)
    store.close()
