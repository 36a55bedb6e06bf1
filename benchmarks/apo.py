"""Rollouts APO needs to reach a validation gain, against random rewrites with the same budget.

Both searches run the same beam search on the scripted room-selection world
(`tests/apo/scripted_rooms.py`: the agent's model obeys exactly the rules its system prompt
states): APO proposes children with the critic's textual gradient and the editor, the baseline
appends a random sentence (one of the four rules or one of four that change nothing). A search
counts the rollouts (training + validation) spent when a candidate first scores at least
seed score + `--gain` on the validation sample; a search that never gets there counts its whole
budget (marked ``>=``), which flatters the baseline.

    .venv/bin/python benchmarks/apo.py [--seeds 5] [--gain 0.5] [--budget 600]
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import agentlightning as agl  # noqa: E402
from agl_apo import APO, APOConfig, TextLLM  # noqa: E402
from agl_apo.candidates import Candidate, stored_candidates  # noqa: E402
from agl_core.runtime.agent import Agent  # noqa: E402
from agl_core.store.base import LightningStore  # noqa: E402
from agl_core.training.algorithm import fit  # noqa: E402
from agl_core.types import LLMEndpoint, Rollout  # noqa: E402
from tests.apo import scripted_rooms  # noqa: E402
from tests.fixtures.scripted_openai import ScriptedOpenAI  # noqa: E402


class Reached(Exception):
    """Raised after the round in which the target was reached: the rest of the budget is not needed."""


class TargetedAPO(APO):
    target: float = 1.0

    def _finish_round(self, store: LightningStore, state: Any, round_: int, **kwargs: Any) -> None:
        super()._finish_round(store, state, round_, **kwargs)
        if state.best_by_round[-1] >= self.target:
            raise Reached


class RandomRewrites(TargetedAPO):
    """The naive baseline: a child is its parent plus one random sentence; no critic, no editor."""

    rng: random.Random

    def propose(self, store: LightningStore, parent: Candidate, rollouts: Sequence[Rollout], child: int) -> Any:
        agent = self.optimize[0]
        pool = [s for s in (*scripted_rooms.SENTENCES.values(), *scripted_rooms.DISTRACTORS) if s not in parent.prompts[agent]]
        if not pool:
            return None
        edited = f"{parent.prompts[agent]} {self.rng.choice(pool)}"
        return agent, "random rewrite", {**parent.prompts, agent: edited}


def search(kind: type[TargetedAPO], server: ScriptedOpenAI, seed: int, gain: float, budget: int) -> tuple[int, bool, float, float]:
    """(rollouts to reach seed + gain, reached?, seed score, best score) of one search."""
    store = LightningStore("memory://")
    agl.configure(store=store)
    config = APOConfig(
        beam_width=4, branch_factor=4, beam_rounds=100, patience=100, gradient_batch_size=8, val_batch_size=16,
        rollout_budget=budget, seed=seed,
    )
    apo = kind(
        config,
        prompts={"room_selector": scripted_rooms.SEED_PROMPT},
        resources={"llm": LLMEndpoint(endpoint=server.base_url, model="scripted", api_key="bench")},
        output_dir=Path(tempfile.mkdtemp()),
        llm=TextLLM("scripted", base_url=server.base_url, api_key="bench"),
    )
    apo.rng = random.Random(seed)
    val = random.Random(seed).sample(scripted_rooms.load_tasks("val"), 16)
    seed_score = scripted_rooms.val_accuracy(scripted_rooms.SEED_PROMPT, val)
    apo.target = min(1.0, seed_score + gain)
    try:
        fit(apo, Agent("room_selector"), store, scripted_rooms.load_tasks("train"), scripted_rooms.load_tasks("val"), n_workers=4)
    except Reached:
        pass
    candidates = stored_candidates(store, store.query_runs()[0].run_id)
    hit = next((c for c in candidates if (c.score or 0) >= apo.target), None)
    best = max(c.score or 0 for c in candidates)
    return (hit.rollouts, True, seed_score, best) if hit else (budget, False, seed_score, best)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--gain", type=float, default=0.5, help="validation gain over the seed prompt to reach")
    parser.add_argument("--budget", type=int, default=600, help="rollout budget of each search")
    args = parser.parse_args()
    os.environ.setdefault("AGL_HOME", tempfile.mkdtemp())
    logging.getLogger("agentlightning").setLevel(logging.ERROR)

    rows = []
    with ScriptedOpenAI(scripted_rooms.responder) as server:
        for seed in range(args.seeds):
            apo = search(TargetedAPO, server, seed, args.gain, args.budget)
            naive = search(RandomRewrites, server, seed, args.gain, args.budget)
            rows.append((seed, apo, naive))
            mark = lambda r: f"{'' if r[1] else '>='}{r[0]}"  # noqa: E731
            print(f"seed {seed}: seed score {apo[2]:.3f}, target {min(1.0, apo[2] + args.gain):.3f} | "
                  f"APO {mark(apo):>5} rollouts (best {apo[3]:.3f}) | random rewrites {mark(naive):>5} rollouts (best {naive[3]:.3f})",
                  flush=True)
    apo_median = statistics.median(r[1][0] for r in rows)
    naive_median = statistics.median(r[2][0] for r in rows)
    reached = sum(r[2][1] for r in rows)
    print(f"\nrollouts to reach +{args.gain:g} validation (median of {len(rows)} seeds, budget {args.budget}):")
    print(f"  APO (textual gradients + beam): {apo_median:g}  (reached {sum(r[1][1] for r in rows)}/{len(rows)})")
    print(f"  random rewrites, same beam:     {naive_median:g}  (reached {reached}/{len(rows)}; misses count the full budget)")
    print(f"  ratio random / APO: {naive_median / apo_median:.2f}x fewer rollouts with APO")


if __name__ == "__main__":
    main()
