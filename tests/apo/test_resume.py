"""A killed run resumes from the beam stored in the store, not from the seed."""

from __future__ import annotations

import pytest

from agl_apo import APO
from agl_apo.candidates import rank, stored_candidates
from agl_core.runtime.agent import Agent
from agl_core.training.algorithm import fit
from tests.apo import scripted_rooms
from tests.apo.conftest import make_apo

TRAIN, VAL = scripted_rooms.load_tasks("train"), scripted_rooms.load_tasks("val")


class Killed(Exception):
    pass


def test_killed_run_resumes_from_stored_beam(store, server, tmp_path, monkeypatch):
    finish = APO._finish_round

    def finish_then_die(self, store, state, round_, **kwargs):
        finish(self, store, state, round_, **kwargs)
        if round_ == 1:
            raise Killed

    monkeypatch.setattr(APO, "_finish_round", finish_then_die)
    with pytest.raises(Killed):
        fit(make_apo(server, tmp_path), Agent("room_selector"), store, TRAIN, VAL, n_workers=4)
    [run] = store.query_runs()
    assert run.status == "failed"
    before = stored_candidates(store, run.run_id)
    assert {c.round for c in before} == {0, 1}
    spent = store.count_rollouts(run_id=run.run_id)
    monkeypatch.setattr(APO, "_finish_round", finish)

    summary = fit(make_apo(server, tmp_path, run_id=run.run_id), Agent("room_selector"), store, TRAIN, VAL, n_workers=4)

    assert summary["run_id"] == run.run_id and store.get_run(run.run_id).status == "finished"
    after = stored_candidates(store, run.run_id)
    assert [c.candidate_id for c in after[: len(before)]] == [c.candidate_id for c in before]
    assert all(c.round >= 2 for c in after[len(before):]) and len(after) > len(before)
    # the seed was scored once, and round 2 expanded the beam restored from the stored candidates
    seed = before[0]
    assert len([r for r in store.query_rollouts(run_id=run.run_id, mode="val") if r.metadata.get("apo_candidate") == seed.candidate_id]) == 16
    restored_beam = {c.candidate_id for c in rank(before)[:2]}
    assert {c.parent for c in after if c.round == 2} <= restored_beam
    assert [m.step for m in store.query_metrics(run.run_id)] == list(range(summary["rounds"] + 1))
    assert summary["rollouts"] == store.count_rollouts(run_id=run.run_id) > spent
    assert summary["best_score"] >= rank(before)[0].score


def test_resuming_an_unknown_run_is_an_error(store, server, tmp_path):
    with pytest.raises(ValueError, match="cannot resume"):
        fit(make_apo(server, tmp_path, run_id="run-nope"), Agent("room_selector"), store, TRAIN, VAL)
