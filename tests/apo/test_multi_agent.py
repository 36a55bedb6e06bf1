"""Selective optimization: in a planner + selector system only the selector's prompt is tuned."""

from __future__ import annotations

import agentlightning as agl
from agl_apo.candidates import stored_candidates
from agl_core.runtime.agent import Agent
from agl_core.runtime.graders import grade
from agl_core.training.algorithm import fit
from tests.apo import scripted_rooms
from tests.apo.conftest import make_apo

PLANNER_PROMPT = "You are the planner: restate what the request needs."
planner, selector = Agent("planner"), Agent("selector")


def two_agents(task, resources):
    with agl.tracer.trace("planner"):
        planner.run(task["question"], resources)
    with agl.tracer.trace("selector"):
        answer = selector.run(task["question"], resources)
    return grade(task, answer)


def test_only_the_selected_agent_changes(store, server, tmp_path):
    prompts = {"planner": PLANNER_PROMPT, "selector": scripted_rooms.SEED_PROMPT}
    apo = make_apo(server, tmp_path, prompts=prompts, beam_rounds=1, val_batch_size=8)
    summary = fit(apo, two_agents, store, scripted_rooms.load_tasks("train"), scripted_rooms.load_tasks("val"), n_workers=4)

    assert summary["best_score"] > summary["seed_score"]
    assert summary["best_prompts"]["selector"] != scripted_rooms.SEED_PROMPT
    assert set(summary["best_prompts"]) == {"selector"}
    run_versions = [u for u in store.query_resources() if u.metadata.get("run_id") == summary["run_id"]]
    assert run_versions and all(u.resources["planner"].template == PLANNER_PROMPT for u in run_versions)
    assert {c.agent for c in stored_candidates(store, summary["run_id"]) if c.parent} == {"selector"}
    # the critic saw the selector's calls, rebuilt from spans, and none of the planner's
    critiques = [r["body"]["messages"][1]["content"] for r in server.chat_requests() if r["body"]["messages"][0]["content"].startswith("You critique")]
    assert critiques and all("Agent: selector" in c and "[system] You help" in c for c in critiques)
    assert not any(PLANNER_PROMPT in c or "Plan:" in c for c in critiques)
