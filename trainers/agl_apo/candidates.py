"""Prompt candidates: how they are kept in the store (one resources version each) and reported.

A scored candidate is a resources version whose metadata carries ``algorithm: apo``, its
``run_id``, ``candidate_id``, ``parent``, ``round`` and validation ``score`` — which is what the
dashboard's resources history shows, what `export --format prompt` reads, and what a resumed run
rebuilds its beam from.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from agl_core.store.base import LightningStore
from agl_core.types import PromptTemplate, ResourcesUpdate

ALGORITHM = "apo"


@dataclass
class Candidate:
    candidate_id: str
    #: Template text of every optimized agent (the other agents' templates never change).
    prompts: dict[str, str]
    round: int
    #: Creation order within the run; breaks score ties in favour of older candidates.
    index: int
    parent: str | None = None
    #: The agent whose prompt this candidate edited (None for the seed).
    agent: str | None = None
    gradient: str | None = None
    score: float | None = None
    #: Rollouts the run had spent when this candidate's score was known.
    rollouts: int = 0
    resources_id: str | None = None

    def metadata(self, run_id: str) -> dict[str, Any]:
        return {
            "algorithm": ALGORITHM,
            "run_id": run_id,
            "candidate_id": self.candidate_id,
            "parent": self.parent,
            "round": self.round,
            "index": self.index,
            "agent": self.agent,
            "score": self.score,
            "rollouts": self.rollouts,
            "optimized": sorted(self.prompts),
            "gradient": self.gradient,
        }

    @classmethod
    def from_update(cls, update: ResourcesUpdate) -> "Candidate":
        meta = update.metadata
        prompts = {
            name: res.template
            for name, res in update.resources.items()
            if name in meta.get("optimized", ()) and isinstance(res, PromptTemplate)
        }
        return cls(
            candidate_id=meta["candidate_id"],
            prompts=prompts,
            round=int(meta["round"]),
            index=int(meta.get("index", 0)),
            parent=meta.get("parent"),
            agent=meta.get("agent"),
            gradient=meta.get("gradient"),
            score=float(meta["score"]),
            rollouts=int(meta.get("rollouts", 0)),
            resources_id=update.resources_id,
        )


def rank(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Best validation score first; ties go to the older candidate (fewer edits, seen first)."""
    return sorted(candidates, key=lambda c: (-(c.score if c.score is not None else float("-inf")), c.index))


def stored_candidates(store: LightningStore, run_id: str) -> list[Candidate]:
    """Every scored candidate of `run_id` in the store, in creation order."""
    found = [
        Candidate.from_update(update)
        for update in store.query_resources()
        if update.metadata.get("algorithm") == ALGORITHM
        and update.metadata.get("run_id") == run_id
        and isinstance(update.metadata.get("score"), (int, float))
    ]
    return sorted(found, key=lambda c: c.index)


# --- reports -------------------------------------------------------------------------------------


def _header(run_id: str, best: Candidate, seed: Candidate | None) -> str:
    seed_part = f" (seed {seed.score:.3f})" if seed is not None and seed.score is not None else ""
    return f"# run {run_id}: best validation score {best.score:.3f}{seed_part}; candidate {best.candidate_id}, round {best.round}"


def write_report(out: Path, run_id: str, candidates: Sequence[Candidate]) -> Path:
    """Write the best prompt (text and JSON, with its score) and the candidate history; returns the best-prompt file."""
    if not candidates:
        raise ValueError(f"run {run_id} has no scored prompt candidates")
    out.mkdir(parents=True, exist_ok=True)
    best = rank(candidates)[0]
    seed = next((c for c in candidates if c.parent is None), None)
    best_json = {
        "run_id": run_id,
        "candidate_id": best.candidate_id,
        "score": best.score,
        "seed_score": seed.score if seed else None,
        "round": best.round,
        "prompts": best.prompts,
    }
    (out / "best_prompt.json").write_text(json.dumps(best_json, indent=2) + "\n")
    sections = [_header(run_id, best, seed)]
    sections += [f"## {name}\n{text}" for name, text in sorted(best.prompts.items())]
    best_txt = out / "best_prompt.txt"
    best_txt.write_text("\n\n".join(sections) + "\n")

    ordered = sorted(candidates, key=lambda c: c.index)
    (out / "history.json").write_text(json.dumps([asdict(c) for c in ordered], indent=2) + "\n")
    lines = []
    for c in ordered:
        edited = f", edited {c.agent}" if c.agent else ""
        lines.append(f"[round {c.round}] {c.candidate_id} score {c.score:.3f} parent {c.parent or '-'}{edited}, after {c.rollouts} rollouts")
        lines += [f"  {name}: " + text.replace("\n", "\n    ") for name, text in sorted(c.prompts.items())]
    (out / "history.txt").write_text("\n".join(lines) + "\n")
    return best_txt


def read_history(run_dir: Path) -> list[Candidate]:
    """The candidates a run wrote into its output directory (for exports without its store)."""
    path = run_dir / "history.json"
    if not path.is_file():
        return []
    return [Candidate(**item) for item in json.loads(path.read_text())]
