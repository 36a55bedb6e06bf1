"""PostgreSQL restarted (twice: ``immediate``, then ``fast``) while clients enqueue rollouts, add
spans, claim and finish rollouts: clients wait, reconnect and retry, and a retried call stores
nothing twice — every acknowledged rollout and span is there exactly once, every rollout finished once."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest

from agl_core.store.base import StoreUnavailable
from agl_core.store.sql import SqlStore
from agl_core.types import RolloutRequest, Span
from tests.faults.conftest import Postgres, report
from tests.faults.procs import wait_until
from tests.fixtures.scripted_openai import free_port

PRODUCERS, WORKERS, SPANS_PER_CALL = 2, 2, 10


class Load:
    """Producer threads (enqueue one rollout, then add its spans) and worker threads (claim,
    add a span, succeed), each with its own store client, until `stop`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.rollouts: list[str] = []  # acknowledged enqueues
        self.inputs: list[Any] = []
        self.spans: list[tuple[str, str]] = []  # acknowledged add_spans
        self.finished: Counter[str] = Counter()  # succeeded reports acknowledged, per rollout
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self.producing, self.working = threading.Event(), threading.Event()
        self._threads = [threading.Thread(target=self._guard, args=(self._produce, i), daemon=True) for i in range(PRODUCERS)]
        self._threads += [threading.Thread(target=self._guard, args=(self._work, i), daemon=True) for i in range(WORKERS)]

    def _guard(self, loop: Any, index: int) -> None:
        store = SqlStore(self.url, heartbeat_timeout=10.0)
        try:
            loop(store, index)
        except Exception as exc:  # the test fails on any: a client must ride out a restart
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            store.close()

    def _produce(self, store: SqlStore, index: int) -> None:
        n = 0
        while not self.producing.is_set():
            task = {"producer": index, "n": n}
            [rollout] = store.enqueue_rollouts([RolloutRequest(input=task, max_attempts=3)])
            spans = [_span(rollout.rollout_id, index, n, k) for k in range(SPANS_PER_CALL)]
            store.add_spans(spans)
            with self._lock:
                self.rollouts.append(rollout.rollout_id)
                self.inputs.append((index, n))
                self.spans.extend((s.trace_id, s.span_id) for s in spans)
            n += 1

    def _work(self, store: SqlStore, index: int) -> None:
        while not self.working.is_set():
            attempted = store.dequeue_rollout(f"worker-{index}")
            if attempted is None:
                time.sleep(0.02)
                continue
            span = _span(attempted.rollout_id, 100 + index, attempted.attempt.sequence, 0, attempted.attempt.attempt_id)
            store.add_spans([span])
            ended = store.update_attempt(attempted.rollout_id, attempted.attempt.attempt_id, "succeeded", reward=1.0)
            with self._lock:
                self.spans.append((span.trace_id, span.span_id))
                if ended.status == "succeeded":
                    self.finished[attempted.rollout_id] += 1

    def progress(self) -> int:
        with self._lock:
            return len(self.rollouts)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        for thread in self._threads:
            thread.join(60)


_TRACES = iter(range(1, 10**9))


def _span(rollout_id: str, client: int, n: int, k: int, attempt_id: str | None = None) -> Span:
    trace = f"{next(_TRACES):032x}"
    return Span(
        rollout_id=rollout_id, attempt_id=attempt_id, trace_id=trace, span_id=f"{client:04x}{n:08x}{k:04x}",
        name="load", start_time=time.time(), end_time=time.time(),
    )  # fmt: skip


def test_clients_ride_out_postgres_restarts_without_duplicates_or_losses(postgres: Postgres) -> None:
    load = Load(postgres.url)
    SqlStore(postgres.url).close()  # the tables, before the clients race to create them
    load.start()
    marks: list[int] = []
    for mode in ("immediate", "fast"):
        wait_until(lambda: load.progress() >= len(marks) * 40 + 30 or bool(load.errors), 60, "load before a restart")
        marks.append(load.progress())
        postgres.stop(mode)
        time.sleep(1.0)  # clients meet a closed port meanwhile
        postgres.start()
    wait_until(lambda: load.progress() >= marks[-1] + 30 or bool(load.errors), 60, "load after the restarts")
    load.producing.set()
    with SqlStore(postgres.url) as store:
        wait_until(lambda: not store.count_rollouts(("queuing", "requeuing", "running")) or bool(load.errors), 60, "the queue drains")
        load.working.set()
        load.join()
        rollouts = store.query_rollouts()
        spans = Counter((s.trace_id, s.span_id) for s in store.query_spans())
        attempts = Counter(len(store.query_attempts(r.rollout_id)) for r in rollouts)

    assert not load.errors, load.errors
    report(
        f"postgres restarted twice under load: {len(load.rollouts)} rollouts acknowledged, {len(rollouts)} stored "
        f"({len(set(load.inputs))} distinct tasks), {len(load.spans)} spans acknowledged, {len(spans)} stored, "
        f"{sum(spans.values()) - len(spans)} stored twice; attempts per rollout "
        + ", ".join(f"{n}: {count}" for n, count in sorted(attempts.items()))
        + f"; succeeded reports per rollout {sorted(Counter(load.finished.values()).items())}"
    )
    assert sorted(r.rollout_id for r in rollouts) == sorted(load.rollouts)  # none lost, none enqueued twice
    assert len(set(load.inputs)) == len(load.inputs)
    assert set(spans) == set(load.spans) and set(spans.values()) == {1}
    assert all(r.status == "succeeded" for r in rollouts)
    assert set(load.finished) == set(load.rollouts) and set(load.finished.values()) == {1}  # finished exactly once


def test_a_database_never_reached_is_one_line_at_once() -> None:
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install 'agentlightning[postgres]'")
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as refused:
        SqlStore(url)
    assert time.monotonic() - started < 5  # no waiting for a server that never answered
    assert "\n" not in str(refused.value) and "Connection refused" in str(refused.value)
