"""The `LightningStore` contract, run over every backend: ``memory://``, a SQLite file, a real
PostgreSQL and ``http://`` (a store server in front of SQLite). Timeouts are driven by a fake
clock given to the (server-side) SQL store, never by sleeping."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from agl_core.server import BackgroundCollector
from agl_core.store import rules, tables
from agl_core.store.base import LightningStore, StoreError, store_methods
from agl_core.store.sql import SqlStore
from agl_core.tracing import semconv
from agl_core.training.adapters import spans_to_triplets
from agl_core.types import LLMEndpoint, PromptTemplate, RolloutRequest, Run, Span

HEARTBEAT_TIMEOUT = 10.0


class FakeClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "sqlite", "postgres", "http"])
def store(request, tmp_path: Path, clock: FakeClock) -> Iterator[LightningStore]:
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
    else:
        url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'store.db'}"
    local = SqlStore(url, heartbeat_timeout=HEARTBEAT_TIMEOUT, clock=clock)
    if request.param == "postgres":  # one database for the session: start each test empty
        with local._engine.begin() as conn:
            for table in reversed(tables.metadata.sorted_tables):
                conn.execute(table.delete())
    if request.param == "http":
        with BackgroundCollector(local) as server, LightningStore(server.url) as client:
            yield client
    else:
        yield local
    local.close()


_span_ids = iter(range(1, 1 << 60))


def _span(rollout_id: str, attempt_id: str, name: str, at: float, reward: float | None = None, **attrs) -> Span:
    if reward is not None:
        attrs[semconv.AGL_REWARD_VALUE] = reward
    return Span(trace_id="ab" * 16, span_id=f"{next(_span_ids):016x}", name=name, start_time=at, end_time=at,
                attributes=attrs, rollout_id=rollout_id, attempt_id=attempt_id)


def test_every_store_method_has_an_async_twin() -> None:
    assert "enqueue_rollouts" in store_methods() and "close" not in store_methods()
    for method in store_methods():
        assert getattr(LightningStore, f"a{method}").__name__ == f"a{method}"


def test_cycle_settles_final_reward_from_the_latest_reward_span(store, clock) -> None:
    rollout = store.enqueue_rollout({"q": 1}, mode="val", task_id="t1")
    assert rollout.status == "queuing"
    claimed = store.dequeue_rollout("w1")
    assert claimed.rollout_id == rollout.rollout_id and claimed.attempt.worker_id == "w1"
    assert claimed.status == "running" and claimed.attempt.sequence == 1
    assert store.dequeue_rollout("w2") is None
    rid, aid = claimed.rollout_id, claimed.attempt.attempt_id
    now = clock()
    # stored first but ended later: the latest reward is the one that ended last, not the last stored
    later, earlier = _span(rid, aid, semconv.SPAN_REWARD, now + 2, 0.7), _span(rid, aid, semconv.SPAN_REWARD, now + 1, 0.2)
    assert store.add_spans([_span(rid, aid, "chat m", now, tags=["a", "b"]), later, earlier]) == 3
    store.heartbeat(rid, aid)
    assert store.update_attempt(rid, aid, "succeeded").status == "succeeded"
    done = store.get_rollout(rid)
    assert done.status == "succeeded" and done.final_reward == 0.7
    spans = store.query_spans(rid, aid)
    assert [s.span_id for s in spans] == [s.span_id for s in store.query_spans(trace_id="ab" * 16)]
    assert spans[0].attributes["tags"] == ["a", "b"] and [s.sequence_id for s in spans] == sorted(s.sequence_id for s in spans)
    # the adapters pick the same reward the store settled on
    assert spans_to_triplets(spans)[0].reward == 0.7 == rules.latest_reward(spans)
    assert store.count_spans(rid) == 3 and store.count_spans() == 3
    assert [r.rollout_id for r in store.query_rollouts(status="succeeded", mode="val")] == [rid]
    assert store.query_rollouts(mode="train") == [] and store.count_rollouts(status=["succeeded", "failed"]) == 1
    assert store.wait_for_rollouts([rid], timeout=1)[0].final_reward == 0.7
    assert store.get_rollout("ro-missing") is None


def test_failed_attempts_requeue_until_max_attempts_then_fail(store) -> None:
    rollout = store.enqueue_rollout("x", max_attempts=2)
    first = store.dequeue_rollout("w1")
    store.update_attempt(rollout.rollout_id, first.attempt.attempt_id, "failed", error="boom")
    assert store.get_rollout(rollout.rollout_id).status == "requeuing"
    second = store.dequeue_rollout("w2")
    assert second.rollout_id == rollout.rollout_id and second.attempt.sequence == 2
    store.update_attempt(rollout.rollout_id, second.attempt.attempt_id, "failed", error="boom again")
    final = store.get_rollout(rollout.rollout_id)
    assert final.status == "failed" and final.num_attempts == 2 and final.final_reward is None
    attempts = store.query_attempts(rollout.rollout_id)
    assert [(a.status, a.error) for a in attempts] == [("failed", "boom"), ("failed", "boom again")]
    assert store.dequeue_rollout() is None


def test_silent_attempt_times_out_and_requeues_and_its_late_report_changes_nothing(store, clock) -> None:
    rollout = store.enqueue_rollout("x", max_attempts=2)
    first = store.dequeue_rollout()
    rid, aid = rollout.rollout_id, first.attempt.attempt_id
    clock.advance(HEARTBEAT_TIMEOUT - 1)
    store.heartbeat(rid, aid)
    clock.advance(HEARTBEAT_TIMEOUT - 1)
    assert store.sweep() == 0  # it beat less than the timeout ago
    clock.advance(2)
    assert store.sweep() == 1
    assert store.get_rollout(rid).status == "requeuing"
    assert store.query_attempts(rid)[0].error == rules.TIMEOUT_ERROR
    second = store.dequeue_rollout()
    late = store.update_attempt(rid, aid, "succeeded", reward=1.0)
    assert late.status == "timeout" and store.get_rollout(rid).status == "running"
    store.update_attempt(rid, second.attempt.attempt_id, "succeeded", reward=0.5)
    assert store.get_rollout(rid).final_reward == 0.5
    assert [a.status for a in store.query_attempts(rid)] == ["timeout", "succeeded"]


def test_claims_sweep_by_themselves_so_a_dead_worker_is_noticed(store, clock) -> None:
    rollout = store.enqueue_rollout("x")
    store.dequeue_rollout("dies")
    clock.advance(HEARTBEAT_TIMEOUT + 1)
    assert store.dequeue_rollout("next") is None  # that claim found the attempt timed out
    assert store.get_rollout(rollout.rollout_id).status == "failed"


def test_timeout_s_ends_an_attempt_that_still_beats(store, clock) -> None:
    rollout = store.enqueue_rollout("x", timeout_s=15)
    claimed = store.dequeue_rollout()
    for _ in range(2):
        clock.advance(7)
        store.heartbeat(rollout.rollout_id, claimed.attempt.attempt_id)
        assert store.sweep() == 0
    clock.advance(2)
    done = store.wait_for_rollouts([rollout.rollout_id], timeout=5)
    assert [r.status for r in done] == ["failed"]
    assert store.query_attempts(rollout.rollout_id)[0].status == "timeout"


def test_bad_reports_and_requests_are_refused(store) -> None:
    rollout = store.start_rollout({"q": 3}, worker_id="w", max_attempts=3, metadata={"agent": "a"})
    assert rollout.status == "running" and rollout.max_attempts == 3 and rollout.attempt.worker_id == "w"
    rid, aid = rollout.rollout_id, rollout.attempt.attempt_id
    with pytest.raises(StoreError, match="no attempt"):
        store.update_attempt(rid, "at-nope", "succeeded")
    for reward in (float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match="finite"):
            store.update_attempt(rid, aid, "succeeded", reward=reward)
    with pytest.raises(ValueError, match="status"):
        store.update_attempt(rid, aid, "exploded")
    with pytest.raises(TypeError, match="RolloutRequest"):
        store.enqueue_rollouts([{"input": 1}])
    with pytest.raises(ValueError, match="max_attempts"):
        store.enqueue_rollout("x", max_attempts=0)
    assert store.get_rollout(rid).status == "running" and store.count_rollouts() == 1


def test_cancel_ends_the_running_attempt_and_later_reports_change_nothing(store) -> None:
    rollout = store.enqueue_rollout("x", max_attempts=3)
    claimed = store.dequeue_rollout()
    cancelled = store.cancel_rollout(rollout.rollout_id)
    assert cancelled.status == "cancelled"
    assert [(a.status, a.error) for a in store.query_attempts(rollout.rollout_id)] == [("failed", rules.CANCELLED_ERROR)]
    store.update_attempt(rollout.rollout_id, claimed.attempt.attempt_id, "succeeded", reward=1.0)
    assert store.get_rollout(rollout.rollout_id).status == "cancelled" and store.dequeue_rollout() is None
    assert store.cancel_rollout(rollout.rollout_id).status == "cancelled"
    with pytest.raises(StoreError, match="no rollout"):
        store.cancel_rollout("ro-missing")


def test_late_reward_span_settles_a_missing_final_reward_once(store, clock) -> None:
    rollout = store.enqueue_rollout("x")
    claimed = store.dequeue_rollout()
    rid, aid = rollout.rollout_id, claimed.attempt.attempt_id
    store.update_attempt(rid, aid, "succeeded")
    assert store.get_rollout(rid).final_reward is None
    store.add_spans([_span(rid, aid, semconv.SPAN_REWARD, clock(), 1.0)])
    assert store.get_rollout(rid).final_reward == 1.0
    store.add_spans([_span(rid, aid, semconv.SPAN_REWARD, clock() + 1, 0.0)])
    assert store.get_rollout(rid).final_reward == 1.0  # settled: a later span does not move it


def test_resources_are_versioned_and_annotations_merge(store) -> None:
    assert store.get_latest_resources() is None
    v1 = store.add_resources({"prompt": PromptTemplate(template="a {x}")}, metadata={"by": "test"})
    v2 = store.add_resources({"prompt": PromptTemplate(template="b {x}"), "llm": LLMEndpoint(endpoint="http://h/v1", model="m")})
    assert (v1.version, v2.version) == (1, 2)
    latest = store.get_latest_resources()
    assert latest.resources_id == v2.resources_id and latest.resources["prompt"].format(x=1) == "b 1"
    assert isinstance(latest.resources["llm"], LLMEndpoint) and latest.resources["llm"].model == "m"
    assert store.get_resources(v1.resources_id).resources["prompt"].template == "a {x}"
    assert store.get_resources("res-missing") is None
    assert [r.version for r in store.query_resources()] == [2, 1] and [r.version for r in store.query_resources(1, 1)] == [1]
    assert store.annotate_resources(v1.resources_id, {"score": 0.75}).metadata == {"by": "test", "score": 0.75}
    again = store.get_resources(v1.resources_id)
    assert again.metadata == {"by": "test", "score": 0.75} and again.resources["prompt"].template == "a {x}"
    assert store.get_latest_resources().resources_id == v2.resources_id
    with pytest.raises(ValueError, match="no resources version"):
        store.annotate_resources("res-missing", {"score": 1.0})


def test_runs_and_metrics(store, clock) -> None:
    store.upsert_run(Run(run_id="run-1", algorithm="grpo", config={"lr": 1e-5}))
    store.add_metrics("run-1", 0, {"reward_mean": 0.1})
    store.add_metrics("run-1", 1, {"reward_mean": 0.4, "loss": None})
    created = store.get_run("run-1").created_at
    clock.advance(5)
    finished = store.upsert_run(Run(run_id="run-1", algorithm="grpo", status="finished"))
    got = store.get_run("run-1")
    assert got.status == "finished" and got.created_at == created == finished.created_at
    assert got.updated_at == clock() and store.get_run("run-missing") is None
    assert [r.run_id for r in store.query_runs()] == ["run-1"]
    assert [m.metrics for m in store.query_metrics("run-1")] == [{"reward_mean": 0.1}, {"reward_mean": 0.4, "loss": None}]


def test_batch_enqueue_claims_in_order_and_queries_filter_and_page(store) -> None:
    rollouts = store.enqueue_rollouts(
        [RolloutRequest(input=i, run_id="run-1", metadata={"agent": "even" if i % 2 == 0 else "odd"}) for i in range(5)]
    )
    assert [r.input for r in rollouts] == list(range(5)) and store.enqueue_rollouts([]) == []
    assert [store.dequeue_rollout().rollout_id for _ in range(5)] == [r.rollout_id for r in rollouts]
    assert store.count_rollouts("running", run_id="run-1") == 5
    assert [r.input for r in store.query_rollouts(agent="even")] == [0, 2, 4] and store.count_rollouts(agent="odd") == 2
    assert [r.input for r in store.query_rollouts(newest_first=True, limit=2, offset=1)] == [3, 2]
    assert len(store.query_rollouts(rollout_ids=[r.rollout_id for r in rollouts[:2]])) == 2


async def test_async_twins(store) -> None:
    rollout = await store.aenqueue_rollout({"q": "async"})
    claimed = await store.adequeue_rollout("w")
    await store.aupdate_attempt(claimed.rollout_id, claimed.attempt.attempt_id, "succeeded", reward=1.0)
    assert (await store.aget_rollout(rollout.rollout_id)).final_reward == 1.0


def test_wait_for_rollouts_returns_when_another_client_finishes(store) -> None:
    rollout = store.enqueue_rollout({"q": 4})
    claimed = store.dequeue_rollout("w")
    assert store.wait_for_rollouts([rollout.rollout_id], timeout=0.05) == []
    worker = threading.Timer(
        0.1, store.update_attempt, (claimed.rollout_id, claimed.attempt.attempt_id, "succeeded"), {"reward": 0.1}
    )
    started = time.monotonic()
    worker.start()
    done = store.wait_for_rollouts([rollout.rollout_id], timeout=10)
    worker.join()
    assert [r.final_reward for r in done] == [0.1] and time.monotonic() - started < 5


def test_latest_reward_rule() -> None:
    def reward(value, end: float | None, seq: int) -> Span:
        return Span(trace_id="a" * 32, span_id=f"{seq:016x}", name=semconv.SPAN_REWARD, start_time=1.0, end_time=end,
                    attributes={semconv.AGL_REWARD_VALUE: value}, sequence_id=seq)

    assert rules.latest_reward([]) is None
    assert rules.latest_reward([reward(0.1, 5.0, 1), reward(0.2, None, 2)]) == 0.1  # no end: its start counts
    assert rules.latest_reward([reward(0.1, 5.0, 1), reward(0.3, 5.0, 2)]) == 0.3  # a tie goes to the last stored
    assert rules.latest_reward([reward(0.1, 5.0, 1), reward("high", 9.0, 2), reward(float("nan"), 9.0, 3)]) == 0.1
