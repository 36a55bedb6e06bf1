"""Train (or evaluate) the SQL agent on the built-in ``sql-generation`` task set.

    python -m examples.sql_agent                          # GRPO on the tiny model built here
    python -m examples.sql_agent --model Qwen/Qwen2.5-0.5B-Instruct --steps 20   # a real model, by name or path
    python -m examples.sql_agent --endpoint http://host:8000/v1 --model NAME     # evaluate behind any endpoint

Held-out questions (the set's eval split) are never trained on; the reward is execution match
against the gold SQL.
"""

from __future__ import annotations

import argparse

import agentlightning as agl
from examples.sql_agent.agent import sql_agent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="", help="policy path or hub name (default: the tiny model)")
    parser.add_argument("--endpoint", default=None, help="evaluate against this OpenAI-compatible endpoint instead of training")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--heldout", type=int, default=1000, help="evaluate on at most this many held-out questions")
    args = parser.parse_args()
    train, heldout = agl.load_tasks("sql-generation", "train"), agl.load_tasks("sql-generation", "eval", n=args.heldout)
    agent = sql_agent()
    store = agl.LightningStore()
    if args.endpoint:
        resources = store.add_resources({"llm": agl.LLMEndpoint(endpoint=args.endpoint, model=args.model or "default")})
        store.enqueue_rollouts([agl.RolloutRequest(input=t.input, task_id=t.task_id, resources_id=resources.resources_id, mode="test") for t in heldout])
        agl.instrument(["openai"])
        agl.Runner(agent, store, n_workers=4).run()
        rollouts = store.query_rollouts(mode="test", newest_first=True, limit=len(heldout))
        solved = sum((r.final_reward or 0.0) >= 1.0 for r in rollouts)  # failed rollouts count as wrong
        print(f"held-out execution accuracy: {solved / len(heldout):.3f} (n={len(heldout)})")
        return
    # No output_dir: the run folder is $AGL_HOME/runs/sql-agent-grpo, as for every run.
    config = agl.RLConfig(
        model=args.model, episodes=args.steps, batch_size=4, group_size=4, max_new_tokens=96, eval_every=0, checkpoint_every=0
    )
    summary = agl.GRPOTrainer(config=config, store=store, n_workers=8).train(agent, train_tasks=train, eval_tasks=heldout)
    for mode in ("sampled", "greedy"):
        print(f"held-out execution accuracy ({mode}): {summary[f'{mode}_before']:.3f} -> {summary[f'{mode}_after']:.3f}")
    print(f"run folder: {summary['output_dir']}")


if __name__ == "__main__":
    main()
