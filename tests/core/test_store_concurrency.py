"""Several processes on one SQLite store: concurrent span writers, and workers killed mid-rollout."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time

import pytest

from agl_core.store.sql import SqlStore
from agl_core.types import Span

WRITERS = 4
BATCHES = 40
BATCH = 25
HEARTBEAT_TIMEOUT = 0.5

spawn = mp.get_context("spawn")


def _write_spans(url: str, writer: int, start: mp.Event) -> None:
    store = SqlStore(url)
    start.wait(30)
    for b in range(BATCHES):
        store.add_spans(
            [
                Span(
                    trace_id=f"{writer + 1:032x}",
                    span_id=f"{writer:04x}{b:06x}{i:06x}",
                    name=f"w{writer}",
                    start_time=time.time(),
                    rollout_id=f"ro-{writer}",
                )
                for i in range(BATCH)
            ]
        )
    store.close()


def test_four_processes_write_spans_into_one_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    SqlStore(url).close()  # create the schema once, before the race
    start = spawn.Event()
    writers = [spawn.Process(target=_write_spans, args=(url, w, start)) for w in range(WRITERS)]
    for p in writers:
        p.start()
    start.set()
    for p in writers:
        p.join(60)
        assert p.exitcode == 0
    with SqlStore(url) as store:
        assert store.count_spans() == WRITERS * BATCHES * BATCH
        for w in range(WRITERS):
            spans = store.query_spans(f"ro-{w}")
            assert len({s.span_id for s in spans}) == BATCHES * BATCH
            assert {s.name for s in spans} == {f"w{w}"}


def _claim_and_hang(url: str, claimed: mp.Event) -> None:
    """A worker that takes a rollout, writes a span, then stops answering (until SIGKILL)."""
    store = SqlStore(url, heartbeat_timeout=HEARTBEAT_TIMEOUT)
    rollout = store.dequeue_rollout(worker_id=f"victim-{os.getpid()}")
    assert rollout is not None
    store.add_spans(
        [Span(trace_id="a" * 32, span_id=f"{os.getpid():016x}", name="half done", start_time=time.time(),
              rollout_id=rollout.rollout_id, attempt_id=rollout.attempt.attempt_id)]
    )
    claimed.set()
    time.sleep(60)


def _finish_one(url: str, rollout_id: str) -> None:
    """A healthy worker: claims the rollout when it can and completes it; exit code 3 when
    another worker finished it first, 4 when nothing happened within the deadline."""
    store = SqlStore(url, heartbeat_timeout=HEARTBEAT_TIMEOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rollout = store.dequeue_rollout(worker_id="rescuer")
        if rollout is not None:
            store.update_attempt(rollout.rollout_id, rollout.attempt.attempt_id, "succeeded", reward=1.0)
            return
        if store.get_rollout(rollout_id).status == "succeeded":
            raise SystemExit(3)
        time.sleep(0.1)
    raise SystemExit(4)


def _kill_a_worker_mid_rollout(url: str) -> None:
    claimed = spawn.Event()
    victim = spawn.Process(target=_claim_and_hang, args=(url, claimed))
    victim.start()
    assert claimed.wait(30), "victim never claimed the rollout"
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(10)
    assert victim.exitcode == -signal.SIGKILL


def test_killed_worker_rollout_is_retried_and_succeeds_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'retry.db'}"
    with SqlStore(url, heartbeat_timeout=HEARTBEAT_TIMEOUT) as store:
        rollout = store.enqueue_rollout({"q": "survive"}, max_attempts=3)
    _kill_a_worker_mid_rollout(url)

    rescuers = [spawn.Process(target=_finish_one, args=(url, rollout.rollout_id)) for _ in range(2)]
    for p in rescuers:
        p.start()
    for p in rescuers:
        p.join(40)
    # one rescuer finishes the rollout; the other finds nothing left to claim
    assert sorted(p.exitcode for p in rescuers) == [0, 3]

    with SqlStore(url, heartbeat_timeout=HEARTBEAT_TIMEOUT) as store:
        final = store.get_rollout(rollout.rollout_id)
        attempts = store.query_attempts(rollout.rollout_id)
        assert final.status == "succeeded" and final.final_reward == 1.0
        assert [a.status for a in attempts] == ["timeout", "succeeded"]
        assert attempts[0].worker_id.startswith("victim-") and attempts[1].worker_id == "rescuer"
        assert [s.name for s in store.query_spans(rollout.rollout_id)] == ["half done"]


def test_rollout_whose_workers_all_die_is_failed_not_lost(tmp_path):
    url = f"sqlite:///{tmp_path / 'doomed.db'}"
    with SqlStore(url, heartbeat_timeout=HEARTBEAT_TIMEOUT) as store:
        rollout = store.enqueue_rollout({"q": "doomed"}, max_attempts=2)
    for _ in range(2):
        _kill_a_worker_mid_rollout(url)
        time.sleep(HEARTBEAT_TIMEOUT * 2)
    with SqlStore(url, heartbeat_timeout=HEARTBEAT_TIMEOUT) as store:
        assert store.sweep() == 1
        final = store.get_rollout(rollout.rollout_id)
        assert final.status == "failed" and final.num_attempts == 2
        assert [a.status for a in store.query_attempts(rollout.rollout_id)] == ["timeout", "timeout"]
        assert store.dequeue_rollout("late") is None
        assert store.wait_for_rollouts([rollout.rollout_id], timeout=1)[0].status == "failed"


@pytest.fixture(autouse=True)
def _agl_home(tmp_path, monkeypatch):
    monkeypatch.setenv("AGL_HOME", str(tmp_path / "home"))
