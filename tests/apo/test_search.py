"""APO against the scripted room world: it climbs, keeps the top k, respects its budget."""

from __future__ import annotations

import random

from agl_apo.candidates import rank, stored_candidates
from agl_core.runtime.agent import Agent
from agl_core.training.algorithm import fit
from tests.apo import scripted_rooms
from tests.apo.conftest import make_apo

TRAIN, VAL = scripted_rooms.load_tasks("train"), scripted_rooms.load_tasks("val")


def val_sample(seed: int = 0, n: int = 16) -> list:
    return random.Random(seed).sample(VAL, n)


def test_climbs_from_seed_to_best_reachable_keeping_the_top_k(store, server, tmp_path):
    apo = make_apo(server, tmp_path)
    summary = fit(apo, Agent("room_selector"), store, TRAIN, VAL, n_workers=4)

    sample = val_sample()
    assert summary["seed_score"] == scripted_rooms.val_accuracy(scripted_rooms.SEED_PROMPT, sample) < 0.5
    assert summary["best_score"] == 1.0
    assert scripted_rooms.rules_in(summary["best_prompts"]["room_selector"]) == set(scripted_rooms.RULES)
    assert summary["rollouts"] <= 400 == apo.config.rollout_budget
    run = store.get_run(summary["run_id"])
    assert run is not None and run.status == "finished" and run.algorithm == "apo"
    metrics = store.query_metrics(summary["run_id"])
    assert [m.step for m in metrics] == list(range(len(metrics)))
    assert metrics[0].metrics["heldout_reward"] == summary["seed_score"]
    assert metrics[-1].metrics["heldout_reward"] == 1.0
    # heldout reward never goes down: the beam keeps the best seen
    best = [m.metrics["heldout_reward"] for m in metrics]
    assert best == sorted(best)

    # the beam keeps the top k: every round expands only the best `beam_width` candidates so far
    candidates = stored_candidates(store, summary["run_id"])
    assert all(store.get_resources(c.resources_id).metadata["score"] == c.score for c in candidates)
    # one resources version per candidate, validated on that very version
    run_versions = [u.resources_id for u in store.query_resources() if u.metadata.get("run_id") == summary["run_id"]]
    assert sorted(run_versions) == sorted(c.resources_id for c in candidates)
    validated = store.query_rollouts(run_id=summary["run_id"], mode="val")
    for c in candidates:
        assert {r.resources_id for r in validated if r.metadata.get("apo_candidate") == c.candidate_id} == {c.resources_id}
    for round_ in range(1, summary["rounds"] + 1):
        beam = {c.candidate_id for c in rank(c for c in candidates if c.round < round_)[:2]}
        parents = {c.parent for c in candidates if c.round == round_}
        assert parents <= beam, f"round {round_} expanded {parents - beam}, not the top 2 {beam}"
    for record in metrics:
        top = rank(c for c in candidates if c.round <= record.step)[:2]
        assert record.metrics["heldout_reward"] == top[0].score
        assert record.metrics["beam_mean"] == sum(c.score for c in top) / len(top)


def test_rollout_budget_is_never_exceeded(store, server, tmp_path):
    apo = make_apo(server, tmp_path, rollout_budget=60)
    summary = fit(apo, Agent("room_selector"), store, TRAIN, VAL, n_workers=4)
    assert summary["stopped"] == "budget"
    assert summary["rollouts"] <= 60
    assert store.count_rollouts(run_id=summary["run_id"]) == summary["rollouts"]


def test_early_stop_when_validation_stops_improving(store, server, tmp_path):
    # the seed already states every rule: nothing can beat it, so the search stops after `patience` rounds
    perfect = scripted_rooms.compose(scripted_rooms.SEED_PROMPT, set(scripted_rooms.RULES))
    apo = make_apo(server, tmp_path, beam_rounds=5, patience=1)
    apo.templates["room_selector"] = apo.templates["room_selector"].model_copy(update={"template": perfect})
    summary = fit(apo, Agent("room_selector"), store, TRAIN, VAL, n_workers=4)
    assert summary["stopped"] == "patience" and summary["rounds"] == 1
    assert summary["best_score"] == summary["seed_score"] == 1.0
