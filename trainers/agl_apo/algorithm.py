"""`APO`: automatic prompt optimization by textual gradients and beam search (ProTeGi-style).

Round 0 scores the seed prompts on a fixed validation sample. Each later round runs every beam
member on a fresh training batch, asks the critic what went wrong in its worst traces (and right in
its best), asks the editor to apply that critique, scores each new candidate on the validation
sample and keeps the `beam_width` best of everything scored so far. In a multi-agent system each
child edits one optimized agent's template (round-robin over `optimize`) and every other template
is published unchanged.

Everything needed to resume lives in the store: each scored candidate is a resources version
with its score, parent and round, and each finished round is a metrics record. Because the beam
after round r is the top `beam_width` of all candidates scored up to r, a resumed run rebuilds it
from the stored candidates of the finished rounds and continues with the next round.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar

from agl_apo.candidates import (
    ALGORITHM,
    Candidate,
    rank,
    stored_candidates,
    write_report,
)
from agl_apo.config import APOConfig
from agl_apo.llm import LLMError, TextLLM
from agl_apo.prompts import (
    Trace,
    critic_messages,
    editor_messages,
    parse_edited_prompt,
    placeholders,
)
from agl_core.paths import agl_home
from agl_core.store.base import LightningStore
from agl_core.training.adapters import rollout_triplets
from agl_core.training.algorithm import Algorithm
from agl_core.training.evaluation import summarise
from agl_core.types import PromptTemplate, Resource, Rollout, Run, Task, new_id

log = logging.getLogger("agentlightning.apo")

DEFAULT_MODEL = "gpt-4.1-mini"
#: Low-reward traces the critic sees per child, besides the batch's best.trace.
WORST_TRACES = 3

T = TypeVar("T")
R = TypeVar("R")


def _parallel(fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    if len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items)))) as pool:
        return list(pool.map(fn, items))


@dataclass
class _Budget:
    limit: int | None
    used: int = 0

    def take(self, n: int) -> bool:
        if self.limit is not None and self.used + n > self.limit:
            return False
        self.used += n
        return True


@dataclass
class _State:
    """One run's search state; rebuilt from the store on resume."""

    run: Run
    out_dir: Path
    budget: _Budget
    val_tasks: list[Task]
    candidates: list[Candidate] = field(default_factory=list)
    next_index: int = 0
    best_by_round: list[float] = field(default_factory=list)

    def stale_rounds(self) -> int:
        """Finished rounds since the validation score last improved."""
        best, stale = float("-inf"), 0
        for score in self.best_by_round:
            stale = 0 if score > best else stale + 1
            best = max(best, score)
        return stale


class APO(Algorithm):
    name = ALGORITHM

    def __init__(
        self,
        config: APOConfig | None = None,
        *,
        prompts: Mapping[str, str | PromptTemplate],
        optimize: Sequence[str] | None = None,
        resources: Mapping[str, Resource] | None = None,
        output_dir: str | Path | None = None,
        llm: TextLLM | None = None,
    ) -> None:
        """`prompts` holds the starting template of every agent (optimized or not); `optimize` names
        those to tune (default: all). `resources` are published beside them unchanged (e.g. the agent's
        LLM endpoint). `llm` is the critic/editor; by default built from `config`."""
        self.config = config or APOConfig()
        self.templates = {k: v if isinstance(v, PromptTemplate) else PromptTemplate(template=v) for k, v in prompts.items()}
        self.optimize = list(optimize) if optimize else list(self.templates)
        missing = [name for name in self.optimize if name not in self.templates]
        if missing:
            raise ValueError(f"no starting prompt for agent(s) {missing} (give one per optimized agent)")
        self.resources = dict(resources or {})
        self.output_dir = Path(output_dir) if output_dir else None
        cfg = self.config
        self.llm = llm or TextLLM(
            cfg.model or DEFAULT_MODEL,
            base_url=cfg.endpoint,
            api_key=cfg.api_key,
            temperature=cfg.temperature,
            timeout_s=cfg.request_timeout_s,
            max_retries=cfg.max_retries,
            backoff_s=cfg.backoff_s,
            max_backoff_s=cfg.max_backoff_s,
        )

    # --- resources -------------------------------------------------------------------------------
    def resources_for(self, prompts: Mapping[str, str]) -> dict[str, Resource]:
        """Everything a rollout gets: the fixed resources, every agent's template, `prompts` applied."""
        templates = {
            name: PromptTemplate(template=prompts[name], engine=tpl.engine) if name in prompts else tpl
            for name, tpl in self.templates.items()
        }
        return {**self.resources, **templates}

    @contextlib.contextmanager
    def eval_resources(self, checkpoint: str | None = None) -> Iterator[dict[str, Any]]:
        """The seed prompts, or with `checkpoint` (a run directory or its best_prompt.json) the best ones."""
        if checkpoint is None:
            yield self.resources_for({})
            return
        path = Path(checkpoint)
        path = path / "best_prompt.json" if path.is_dir() else path
        if not path.is_file():
            raise ValueError(f"{checkpoint}: not an APO run directory (no best_prompt.json)")
        yield self.resources_for(json.loads(path.read_text())["prompts"])

    # --- the run ---------------------------------------------------------------------------------
    def run(self, store: LightningStore, train_tasks: Sequence[Task], eval_tasks: Sequence[Task]) -> dict[str, Any]:
        if not train_tasks:
            raise ValueError("APO needs training tasks")
        state = self._open(store, list(eval_tasks) or list(train_tasks))
        try:
            summary = self._search(store, state, list(train_tasks))
        except BaseException:
            store.upsert_run(state.run.model_copy(update={"status": "failed"}))
            raise
        state.run = store.upsert_run(state.run.model_copy(update={"status": "finished"}))
        self._write_outputs(state, summary["stopped"])
        return summary

    def _run_config(self) -> dict[str, Any]:
        settings = {k: v for k, v in dataclasses.asdict(self.config).items() if k != "api_key"}
        return {**settings, "optimize": self.optimize, "seed_prompts": {k: t.template for k, t in self.templates.items()}}

    def _open(self, store: LightningStore, val_pool: list[Task]) -> _State:
        cfg = self.config
        val_tasks = random.Random(cfg.seed).sample(val_pool, min(cfg.val_batch_size, len(val_pool)))
        if cfg.run_id is None:
            run = self.start_run(store, self.name, self._run_config(), None)
            out_dir = self.output_dir or agl_home() / "runs" / run.run_id
            run = store.upsert_run(run.model_copy(update={"output_dir": str(out_dir)}))
            return _State(run=run, out_dir=out_dir, budget=_Budget(cfg.rollout_budget), val_tasks=val_tasks)

        found = store.get_run(cfg.run_id)
        if found is None:
            raise ValueError(f"cannot resume APO run {cfg.run_id!r}: it is not in {store.url}")
        run = store.upsert_run(found.model_copy(update={"status": "running"}))
        out_dir = self.output_dir or Path(run.output_dir or agl_home() / "runs" / run.run_id)
        metrics = store.query_metrics(run.run_id)
        finished = max((m.step for m in metrics), default=-1)
        stored = stored_candidates(store, run.run_id)
        state = _State(
            run=run,
            out_dir=out_dir,
            # every rollout the run enqueued counts, including those of an interrupted round
            budget=_Budget(cfg.rollout_budget, used=store.count_rollouts(run_id=run.run_id)),
            val_tasks=val_tasks,
            candidates=[c for c in stored if c.round <= finished],
            next_index=max((c.index for c in stored), default=-1) + 1,
            best_by_round=[float(m.metrics.get("heldout_reward") or 0.0) for m in metrics],
        )
        log.info("resuming APO run %s after round %d with %d candidates", run.run_id, finished, len(state.candidates))
        return state

    def _search(self, store: LightningStore, state: _State, train_tasks: list[Task]) -> dict[str, Any]:
        cfg = self.config
        stopped = "rounds"
        if not state.best_by_round:
            seed = self._new_candidate(state, {n: self.templates[n].template for n in self.optimize}, round=0)
            if not self._score(store, state, [seed]):
                raise ValueError(f"rollout_budget {cfg.rollout_budget} cannot cover one validation batch ({len(state.val_tasks)})")
            self._finish_round(store, state, 0, reward_mean=seed.score, extra={})
        for round_ in range(len(state.best_by_round), cfg.beam_rounds + 1):
            if state.stale_rounds() >= cfg.patience:
                stopped = "patience"
                break
            if not self._round(store, state, round_, train_tasks):
                stopped = "budget"
                break
        best = rank(state.candidates)[0]
        seed = min(state.candidates, key=lambda c: c.index)
        return {
            "run_id": state.run.run_id,
            "output_dir": str(state.out_dir),
            "seed_score": seed.score,
            "best_score": best.score,
            "best_candidate": best.candidate_id,
            "best_prompts": best.prompts,
            "rounds": len(state.best_by_round) - 1,
            "rollouts": state.budget.used,
            "candidates": len(state.candidates),
            "stopped": stopped,
        }

    def _round(self, store: LightningStore, state: _State, round_: int, train_tasks: list[Task]) -> bool:
        """One expansion round; False when the budget ran out before all of it could be done."""
        cfg = self.config
        beam = rank(state.candidates)[: cfg.beam_width]
        batch = random.Random(f"{cfg.seed}:{round_}").sample(train_tasks, min(cfg.gradient_batch_size, len(train_tasks)))
        if not state.budget.take(len(batch) * len(beam)):
            return False
        per_parent = _parallel(
            lambda parent: self.run_rollouts(
                store,
                batch,
                resources_id=parent.resources_id,
                mode="train",
                run_id=state.run.run_id,
                timeout=cfg.rollout_timeout_s,
                metadata={"apo_candidate": parent.candidate_id},
            ),
            beam,
            len(beam),
        )
        rewards = [r.final_reward or 0.0 for rollouts in per_parent for r in rollouts]
        jobs = [(parent, rollouts, i) for parent, rollouts in zip(beam, per_parent) for i in range(cfg.branch_factor)]
        proposals = _parallel(lambda job: self.propose(store, *job), jobs, cfg.max_parallel_llm)

        seen = {tuple(sorted(c.prompts.items())) for c in state.candidates}
        children, dropped, duplicates = [], 0, 0
        for (parent, _, _), proposal in zip(jobs, proposals):
            if proposal is None:
                dropped += 1
                continue
            agent, gradient, prompts = proposal
            key = tuple(sorted(prompts.items()))
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            children.append(self._new_candidate(state, prompts, round=round_, parent=parent, agent=agent, gradient=gradient))
        scored = self._score(store, state, children)
        # a round the budget cut short still counts: its scored candidates are as good as any
        self._finish_round(
            store,
            state,
            round_,
            reward_mean=sum(rewards) / len(rewards) if rewards else None,
            extra={"candidates": len(scored), "dropped": dropped, "duplicates": duplicates},
        )
        return len(scored) == len(children)

    def _new_candidate(
        self,
        state: _State,
        prompts: dict[str, str],
        *,
        round: int,
        parent: Candidate | None = None,
        agent: str | None = None,
        gradient: str | None = None,
    ) -> Candidate:
        candidate = Candidate(
            candidate_id=new_id("cand"),
            prompts=prompts,
            round=round,
            index=state.next_index,
            parent=parent.candidate_id if parent else None,
            agent=agent,
            gradient=gradient,
        )
        state.next_index += 1
        return candidate

    # --- scoring ---------------------------------------------------------------------------------
    def _score(self, store: LightningStore, state: _State, candidates: list[Candidate]) -> list[Candidate]:
        """Score candidates on the validation sample, as many as the budget allows.

        Each candidate is published as one resources version (its metadata: run, parent, round,
        ...), its validation rollouts run on that version, and the score is then added to the
        version's metadata: a scored version is what the beam, the dashboard and a resume use.
        """
        run_id = state.run.run_id
        n = len(state.val_tasks)
        affordable = []
        for candidate in candidates:
            if not state.budget.take(n):
                break
            candidate.rollouts = state.budget.used  # as if candidates were scored one after another
            affordable.append(candidate)

        def score(candidate: Candidate) -> float:
            version = store.add_resources(self.resources_for(candidate.prompts), candidate.metadata(run_id))
            candidate.resources_id = version.resources_id
            rollouts = self.run_rollouts(
                store,
                state.val_tasks,
                resources_id=version.resources_id,
                mode="val",
                run_id=run_id,
                timeout=self.config.rollout_timeout_s,
                metadata={"apo_candidate": candidate.candidate_id},
            )
            return float(summarise("val", rollouts, n)["mean_reward"])

        for candidate, value in zip(affordable, _parallel(score, affordable, len(affordable))):
            candidate.score = value
            assert candidate.resources_id is not None  # score() published it
            store.annotate_resources(candidate.resources_id, {"score": value})
            state.candidates.append(candidate)
            log.info("candidate %s (round %d): validation %.3f", candidate.candidate_id, candidate.round, value)
        return affordable

    def _finish_round(self, store: LightningStore, state: _State, round_: int, reward_mean: float | None, extra: dict[str, Any]) -> None:
        beam = rank(state.candidates)[: self.config.beam_width]
        best = beam[0].score or 0.0
        metrics = {
            "heldout_reward": best,
            "reward_mean": reward_mean,
            "beam_mean": sum(c.score or 0.0 for c in beam) / len(beam),
            "rollouts": float(state.budget.used),
            **{k: float(v) for k, v in extra.items()},
        }
        # the metrics record marks the round as finished: a resume continues after it
        store.add_metrics(state.run.run_id, round_, metrics)
        state.best_by_round.append(best)
        self._write_outputs(state, None)

    def _write_outputs(self, state: _State, stopped: str | None) -> None:
        write_report(state.out_dir, state.run.run_id, state.candidates)
        best = rank(state.candidates)[0]
        info = {
            "run_id": state.run.run_id,
            "algorithm": ALGORITHM,
            "status": state.run.status,
            "rounds": len(state.best_by_round) - 1,
            "rollouts": state.budget.used,
            "best_score": best.score,
            "best_candidate": best.candidate_id,
            "stopped": stopped,
        }
        (state.out_dir / "run.json").write_text(json.dumps(info, indent=2) + "\n")

    # --- textual gradients -----------------------------------------------------------------------
    def traces(self, store: LightningStore, rollouts: Sequence[Rollout], agent: str, child: int) -> list[Trace]:
        """The traces the critic sees for a parent's `child`-th child: up to `WORST_TRACES` low-reward
        ones (starting at a different one per child, so siblings get different critiques) and the
        batch's best."""
        if not rollouts:
            return []
        ranked = sorted(rollouts, key=lambda r: float("-inf") if r.final_reward is None else r.final_reward)
        best = ranked[-1]
        low = [r for r in ranked if (r.final_reward if r.final_reward is not None else float("-inf")) < (best.final_reward or 0.0)]
        low = low or ranked
        start = child % len(low)
        shown = [low[(start + k) % len(low)] for k in range(min(WORST_TRACES, len(low)))]
        if best not in shown:
            shown.append(best)
        traces = []
        for rollout in shown:
            triplets = rollout_triplets(store, rollout, agents=[agent])
            messages = triplets[-1].prompt_messages + triplets[-1].response_messages if triplets else []
            traces.append(Trace(task_input=rollout.input, reward=rollout.final_reward, messages=messages))
        return traces

    def propose(
        self, store: LightningStore, parent: Candidate, rollouts: Sequence[Rollout], child: int
    ) -> tuple[str, str, dict[str, str]] | None:
        """One child of `parent`: (edited agent, gradient, new prompts), or None if it failed."""
        agent = self.optimize[child % len(self.optimize)]
        current = parent.prompts[agent]
        try:
            gradient = self.llm.complete(critic_messages(agent, current, self.traces(store, rollouts, agent, child)))
            edited = parse_edited_prompt(self.llm.complete(editor_messages(agent, current, gradient)))
        except LLMError as exc:
            log.warning("dropping a child of %s: %s", parent.candidate_id, exc)
            return None
        if edited is None:
            log.warning("dropping a child of %s: the editor returned no <prompt>", parent.candidate_id)
            return None
        if not self._keeps_placeholders(agent, edited):
            log.warning("dropping a child of %s: the edit changed the template's placeholders", parent.candidate_id)
            return None
        return agent, gradient, {**parent.prompts, agent: edited}

    def _keeps_placeholders(self, agent: str, edited: str) -> bool:
        seed = self.templates[agent]
        if seed.engine != "f-string":
            return True
        wanted = placeholders(seed.template)
        return wanted is None or placeholders(edited) == wanted
