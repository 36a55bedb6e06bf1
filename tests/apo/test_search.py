"""APO against the scripted room world: it climbs, keeps the top k, respects its budget."""

from __future__ import annotations

import random

from agl_apo.candidates import rank, stored_candidates
from agl_core.agent import Agent
from agl_core.algorithm import fit
from tests.apo import scripted_rooms
from tests.apo.conftest import make_apo

TRAIN, VAL = scripted_rooms.load_tasks("train"), scripted_rooms.load_tasks("val")


def val_sample(seed: int = 0, n: int = 16) -> list:
    return random.Random(seed).sample(VAL, n)


def test_climbs_from_seed_to_best_reachable(store, server, tmp_path):
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
