"""`HttpStore` against a real store server behaves like the SQL store it fronts."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from agl_core.server import BackgroundCollector
from agl_core.store.base import LightningStore, StoreError
from agl_core.store.http_client import HttpStore
from agl_core.store.sql import SqlStore
from agl_core.tracing import semconv
from agl_core.types import (
    AttemptedRollout,
    LLMEndpoint,
    PromptTemplate,
    Rollout,
    RolloutRequest,
    Run,
    Span,
)


@pytest.fixture(params=["sqlite", "http"])
def store(request, tmp_path, monkeypatch):
    monkeypatch.setenv("AGL_HOME", str(tmp_path / "home"))
    backing = SqlStore(f"sqlite:///{tmp_path / 'store.db'}")
    if request.param == "sqlite":
        yield backing
    else:
        with BackgroundCollector(backing) as server:
            client = LightningStore(server.url)
            assert isinstance(client, HttpStore)
            yield client
            client.close()
    backing.close()


def _spans(rollout_id: str, attempt_id: str, n: int, reward: float | None = None) -> list[Span]:
    trace = f"{abs(hash(attempt_id)):032x}"[-32:]
    spans = [
        Span(
            trace_id=trace,
            span_id=f"{i + 1:016x}",
            parent_id=None if i == 0 else f"{1:016x}",
            name="chat m" if i else "invoke_agent a",
            start_time=time.time(),
            end_time=time.time(),
            attributes={semconv.AGL_ROLLOUT_ID: rollout_id, "i": i, "tags": ["a", "b"]},
            rollout_id=rollout_id,
            attempt_id=attempt_id,
        )
        for i in range(n)
    ]
    if reward is not None:
        spans.append(
            Span(
                trace_id=trace,
                span_id=f"{n + 1:016x}",
                parent_id=f"{1:016x}",
                name=semconv.SPAN_REWARD,
                start_time=time.time(),
                end_time=time.time(),
                attributes={semconv.AGL_REWARD_VALUE: reward},
                rollout_id=rollout_id,
                attempt_id=attempt_id,
            )
        )
    return spans


def test_rollout_cycle_and_final_reward(store):
    rollout = store.enqueue_rollout({"q": 1}, mode="train", task_id="t1")
    assert isinstance(rollout, Rollout) and rollout.status == "queuing"
    claimed = store.dequeue_rollout(worker_id="w1")
    assert isinstance(claimed, AttemptedRollout)
    assert claimed.rollout_id == rollout.rollout_id and claimed.attempt.worker_id == "w1"
    assert store.dequeue_rollout() is None
    rid, aid = claimed.rollout_id, claimed.attempt.attempt_id
    assert store.add_spans(_spans(rid, aid, 3, reward=0.75)) == 4
    store.heartbeat(rid, aid)
    attempt = store.update_attempt(rid, aid, status="succeeded")
    assert attempt.status == "succeeded"
    done = store.get_rollout(rid)
    assert done.status == "succeeded" and done.final_reward == 0.75
    spans = store.query_spans(rid)
    assert [s.name for s in spans] == ["invoke_agent a", "chat m", "chat m", semconv.SPAN_REWARD]
    assert spans[1].attributes["tags"] == ["a", "b"] and spans[1].parent_id == spans[0].span_id
    assert [s.sequence_id for s in spans] == sorted(s.sequence_id for s in spans)
    assert store.count_spans(rid) == 4
    assert store.query_rollouts(status="succeeded", mode="train")[0].rollout_id == rid
    assert store.count_rollouts(status=["succeeded", "failed"]) == 1
    assert store.wait_for_rollouts([rid], timeout=1)[0].final_reward == 0.75
    assert store.get_rollout("ro-missing") is None


def test_resources_versioning(store):
    assert store.get_latest_resources() is None
    first = store.add_resources({"prompt": PromptTemplate(template="Solve {q}")}, metadata={"by": "test"})
    second = store.add_resources(
        {"prompt": PromptTemplate(template="Think, then solve {q}"), "llm": LLMEndpoint(endpoint="http://x/v1", model="m")}
    )
    assert (first.version, second.version) == (1, 2)
    latest = store.get_latest_resources()
    assert latest.resources_id == second.resources_id
    assert isinstance(latest.resources["llm"], LLMEndpoint) and latest.resources["llm"].model == "m"
    assert store.get_resources(first.resources_id).resources["prompt"].format(q="2+2") == "Solve 2+2"
    assert [r.version for r in store.query_resources()] == [2, 1]
    assert store.annotate_resources(first.resources_id, {"score": 0.5}).metadata == {"by": "test", "score": 0.5}
    with pytest.raises(ValueError, match="no resources version"):  # the server's error, raised here as such
        store.annotate_resources("res-missing", {"score": 1.0})


def test_requeue_on_failure_until_max_attempts(store):
    rollout = store.enqueue_rollout({"q": 2}, max_attempts=2)
    first = store.dequeue_rollout("w1")
    store.update_attempt(first.rollout_id, first.attempt.attempt_id, "failed", error="boom")
    assert store.get_rollout(rollout.rollout_id).status == "requeuing"
    second = store.dequeue_rollout("w2")
    assert second.rollout_id == rollout.rollout_id and second.attempt.sequence == 2
    store.update_attempt(second.rollout_id, second.attempt.attempt_id, "failed", error="boom again")
    final = store.get_rollout(rollout.rollout_id)
    assert final.status == "failed" and final.num_attempts == 2
    assert [a.status for a in store.query_attempts(rollout.rollout_id)] == ["failed", "failed"]
    assert store.dequeue_rollout() is None


def test_errors_are_clear(store):
    rollout = store.start_rollout({"q": 3}, worker_id="w", max_attempts=3)
    assert rollout.status == "running" and rollout.max_attempts == 3
    with pytest.raises(StoreError, match="no attempt"):
        store.update_attempt(rollout.rollout_id, "at-nope", "succeeded")
    with pytest.raises(ValueError, match="finite"):
        store.update_attempt(rollout.rollout_id, rollout.attempt.attempt_id, "succeeded", reward=float("nan"))
    with pytest.raises(ValueError, match="status"):
        store.update_attempt(rollout.rollout_id, rollout.attempt.attempt_id, "exploded")


def test_runs_metrics_and_batch_enqueue(store):
    run = store.upsert_run(Run(run_id="run-1", algorithm="grpo", config={"lr": 1e-5}))
    assert store.get_run("run-1").config == {"lr": 1e-5} and run.status == "running"
    store.add_metrics("run-1", 1, {"reward": 0.5, "loss": None})
    assert store.query_metrics("run-1")[0].metrics == {"reward": 0.5, "loss": None}
    rollouts = store.enqueue_rollouts([RolloutRequest(input=i, run_id="run-1") for i in range(5)])
    assert sorted(r.input for r in store.query_rollouts(run_id="run-1")) == [r.input for r in rollouts]
    assert len(store.query_rollouts(rollout_ids=[r.rollout_id for r in rollouts[:2]])) == 2


async def test_async_twins(store):
    rollout = await store.aenqueue_rollout({"q": "async"})
    claimed = await store.adequeue_rollout("w")
    await store.aupdate_attempt(claimed.rollout_id, claimed.attempt.attempt_id, "succeeded", reward=1.0)
    assert (await store.aget_rollout(rollout.rollout_id)).final_reward == 1.0


def test_wait_for_rollouts_returns_when_another_client_finishes(store):
    rollout = store.enqueue_rollout({"q": 4})
    claimed = store.dequeue_rollout("w")

    def finish_later() -> None:
        time.sleep(0.3)
        store.update_attempt(claimed.rollout_id, claimed.attempt.attempt_id, "succeeded", reward=0.1)

    worker = threading.Thread(target=finish_later)
    worker.start()
    started = time.monotonic()
    assert store.wait_for_rollouts([rollout.rollout_id], timeout=0.05) == []
    done = store.wait_for_rollouts([rollout.rollout_id], timeout=10)
    worker.join()
    assert [r.final_reward for r in done] == [0.1] and time.monotonic() - started < 5


def test_http_api_refuses_bad_calls(tmp_path):
    backing = SqlStore("memory://")
    with BackgroundCollector(backing) as server:
        base = f"{server.url}/api/store"
        assert httpx.post(f"{base}/drop_everything", json={}).status_code == 404
        bad = httpx.post(f"{base}/get_rollout", json={"rollout_id": "x", "surprise": 1})
        assert bad.status_code == 400 and "surprise" in bad.json()["message"]
        assert httpx.post(f"{base}/get_rollout", content=b"{oops").status_code == 400
        assert httpx.post(f"{base}/add_spans", json={"spans": [{"name": "no ids"}]}).status_code == 400
        assert httpx.post(f"{base}/count_spans", json={}).json() == {"result": 0}
    backing.close()


def test_unreachable_server_is_a_store_error():
    from tests.fixtures.scripted_openai import free_port

    client = HttpStore(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(StoreError, match="unreachable"):
        client.count_rollouts()
    client.close()


def test_client_forwards_every_store_method_the_interface_does_not_compose():
    from agl_core.store.base import store_methods

    assert {m for m in store_methods() if m not in vars(HttpStore)} == {"enqueue_rollout", "heartbeat"}
