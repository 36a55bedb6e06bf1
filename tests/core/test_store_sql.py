"""LightningStore behaviour on SQLite (file and memory) and a real PostgreSQL: queue, attempts,
retries, resources, spans, runs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import agentlightning as agl
from agl_core.store.sql import SqlStore
from agl_core.types import RolloutRequest, Run, Span


@pytest.fixture(params=["memory", "file", "postgres"])
def store(request, tmp_path: Path):
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
    else:
        url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'store.db'}"
    s = SqlStore(url, heartbeat_timeout=0.5)
    if request.param == "postgres":  # one database for the session: start each test empty
        from agl_core.store import tables

        with s._engine.begin() as conn:
            for table in reversed(tables.metadata.sorted_tables):
                conn.execute(table.delete())
    yield s
    s.close()


def _span(rollout_id: str, attempt_id: str, name: str, **attrs) -> Span:
    now = time.time()
    return Span(trace_id="ab" * 16, span_id=f"{abs(hash((name, now))) % 16**16:016x}", name=name, start_time=now,
                end_time=now, attributes=attrs, rollout_id=rollout_id, attempt_id=attempt_id)


def test_dispatch_by_url(tmp_path: Path) -> None:
    assert isinstance(agl.LightningStore("memory://"), SqlStore)
    assert isinstance(agl.LightningStore(f"sqlite:///{tmp_path}/x.db"), SqlStore)
    with pytest.raises(ValueError, match="unknown store URL"):
        agl.LightningStore("redis://x")


def test_cycle_and_final_reward_from_last_reward_span(store) -> None:
    r = store.enqueue_rollout({"q": 1}, mode="val")
    assert r.status == "queuing"
    claimed = store.dequeue_rollout("w1")
    assert claimed.rollout_id == r.rollout_id and claimed.attempt.worker_id == "w1"
    assert store.dequeue_rollout("w2") is None
    store.add_spans([_span(r.rollout_id, claimed.attempt.attempt_id, "agl.reward", **{"agl.reward.value": 0.2})])
    time.sleep(0.01)
    store.add_spans([_span(r.rollout_id, claimed.attempt.attempt_id, "agl.reward", **{"agl.reward.value": 0.7})])
    store.update_attempt(r.rollout_id, claimed.attempt.attempt_id, status="succeeded")
    got = store.get_rollout(r.rollout_id)
    assert got.status == "succeeded" and got.final_reward == 0.7
    assert [x.rollout_id for x in store.query_rollouts(status="succeeded", mode="val")] == [r.rollout_id]
    assert store.query_rollouts(mode="train") == []
    assert len(store.query_spans(r.rollout_id, claimed.attempt.attempt_id)) == 2


def test_failed_attempts_requeue_until_max_attempts_then_fail(store) -> None:
    r = store.enqueue_rollout("x", max_attempts=2)
    a1 = store.dequeue_rollout()
    store.update_attempt(r.rollout_id, a1.attempt.attempt_id, "failed", error="boom")
    assert store.get_rollout(r.rollout_id).status == "requeuing"
    a2 = store.dequeue_rollout()
    assert a2.attempt.sequence == 2
    store.update_attempt(r.rollout_id, a2.attempt.attempt_id, "failed", error="boom again")
    assert store.get_rollout(r.rollout_id).status == "failed"
    assert [a.status for a in store.query_attempts(r.rollout_id)] == ["failed", "failed"]
    assert store.dequeue_rollout() is None


def test_stale_heartbeat_times_out_and_requeues(store) -> None:
    r = store.enqueue_rollout("x", max_attempts=2)
    a1 = store.dequeue_rollout()
    time.sleep(0.7)
    assert store.sweep() == 1
    assert store.get_rollout(r.rollout_id).status == "requeuing"
    a2 = store.dequeue_rollout()
    store.heartbeat(r.rollout_id, a2.attempt.attempt_id)
    # a late report from the timed-out attempt changes nothing
    store.update_attempt(r.rollout_id, a1.attempt.attempt_id, "succeeded", reward=1.0)
    assert store.get_rollout(r.rollout_id).status == "running"
    store.update_attempt(r.rollout_id, a2.attempt.attempt_id, "succeeded", reward=0.5)
    assert store.get_rollout(r.rollout_id).final_reward == 0.5


def test_wait_for_rollouts_and_timeout_s(store) -> None:
    r = store.enqueue_rollout("x", timeout_s=0.2)
    store.dequeue_rollout()
    done = store.wait_for_rollouts([r.rollout_id], timeout=5)
    assert [x.status for x in done] == ["failed"]


def test_reward_validation_and_unknown_attempt(store) -> None:
    r = store.enqueue_rollout("x")
    a = store.dequeue_rollout()
    with pytest.raises(ValueError):
        store.update_attempt(r.rollout_id, a.attempt.attempt_id, "succeeded", reward=float("nan"))
    with pytest.raises(Exception, match="no attempt"):
        store.update_attempt(r.rollout_id, "at-nope", "succeeded")


def test_resources_are_versioned(store) -> None:
    assert store.get_latest_resources() is None
    v1 = store.add_resources({"prompt": agl.PromptTemplate(template="a {x}")})
    v2 = store.add_resources({"prompt": agl.PromptTemplate(template="b {x}"), "llm": agl.LLMEndpoint(endpoint="http://h/v1", model="m")})
    assert (v1.version, v2.version) == (1, 2)
    latest = store.get_latest_resources()
    assert latest.resources_id == v2.resources_id and latest.resources["prompt"].format(x=1) == "b 1"
    assert isinstance(latest.resources["llm"], agl.LLMEndpoint)
    assert store.get_resources(v1.resources_id).resources["prompt"].template == "a {x}"
    assert [r.version for r in store.query_resources()] == [2, 1]

    scored = store.annotate_resources(v1.resources_id, {"score": 0.75})
    store.annotate_resources(v1.resources_id, {"round": 2})
    again = store.get_resources(v1.resources_id)
    assert scored.metadata == {"score": 0.75} and again.metadata == {"score": 0.75, "round": 2}
    assert again.version == 1 and again.resources["prompt"].template == "a {x}"  # the resources never change
    assert store.get_latest_resources().resources_id == v2.resources_id  # nor does which version is latest
    with pytest.raises(ValueError, match="no resources version"):
        store.annotate_resources("res-missing", {"score": 1.0})


def test_late_reward_spans_settle_final_reward(store) -> None:
    r = store.enqueue_rollout("x")
    a = store.dequeue_rollout()
    store.update_attempt(r.rollout_id, a.attempt.attempt_id, "succeeded")
    assert store.get_rollout(r.rollout_id).final_reward is None
    store.add_spans([_span(r.rollout_id, a.attempt.attempt_id, "agl.reward", **{"agl.reward.value": 1.0})])
    assert store.get_rollout(r.rollout_id).final_reward == 1.0


def test_runs_and_metrics(store) -> None:
    store.upsert_run(Run(run_id="run-1", algorithm="grpo"))
    store.add_metrics("run-1", 0, {"reward_mean": 0.1})
    store.add_metrics("run-1", 1, {"reward_mean": 0.4, "loss": 1.5})
    created = store.get_run("run-1").created_at
    time.sleep(0.01)
    finished = store.upsert_run(Run(run_id="run-1", algorithm="grpo", status="finished"))
    got = store.get_run("run-1")
    assert got.status == "finished" and got.created_at == created == finished.created_at
    assert got.updated_at > created
    assert [m.metrics["reward_mean"] for m in store.query_metrics("run-1")] == [0.1, 0.4]


def test_async_twins(store) -> None:
    import asyncio

    async def main() -> None:
        r = await store.aenqueue_rollout({"q": 2})
        got = await store.aget_rollout(r.rollout_id)
        assert got.input == {"q": 2}

    asyncio.run(main())


def test_enqueue_many_and_dequeue_in_order(store) -> None:
    rs = store.enqueue_rollouts([RolloutRequest(input=i) for i in range(5)])
    got = [store.dequeue_rollout().rollout_id for _ in range(5)]
    assert got == [r.rollout_id for r in rs]
    assert store.count_rollouts("running") == 5
