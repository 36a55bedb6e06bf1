"""The README's main job: an unchanged arithmetic agent gets measurably better with GRPO.

The agent is plain `openai` code with a calculator tool, traced by the openai plugin with no code
change. The policy is a ~1M-parameter model built on this machine (no downloads, cached) and
warm-started on this task (`arith.build_policy`). Training runs in this process on the embedded
SQLite store: `serve` answers the agent's chat calls and records the token ids it sampled, the
trainer reads them back from the store.

The warm-started policy calls the calculator only about a third of the time and, greedily, answers
from memory (and is wrong); GRPO has to teach it when to call the tool.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
from openai import OpenAI

import agentlightning as agl
from examples.demo import arith


@agl.rollout(name="calc-agent")
def calc_agent(task: dict[str, Any], resources: dict[str, Any]) -> float:
    """Ask the model; if it calls the calculator, the calculator's result is the answer."""
    llm = resources["llm"]
    rollout = agl.current_rollout()
    client = OpenAI(base_url=llm.base_url(rollout.rollout_id, rollout.attempt_id), api_key=llm.api_key or "local")
    problem = arith.ArithTask(task["a"], task["op"], task["b"])
    response = client.chat.completions.create(
        model=llm.model,
        messages=arith.prompt_messages(problem),
        tools=[arith.CALCULATOR_TOOL],
        **llm.sampling_parameters,
    )
    message = response.choices[0].message
    answer = str(arith.calculate(problem.expression)) if message.tool_calls else message.content
    return arith.reward(answer, problem)


def as_task(problem: arith.ArithTask) -> agl.Task:
    return agl.Task(task_id=f"arith-{problem.expression}", input={"a": problem.a, "op": problem.op, "b": problem.b})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--output-dir", default=None, help="run folder (default: $AGL_HOME/runs/demo)")
    args = parser.parse_args()
    started = time.perf_counter()
    torch.set_num_threads(1)  # one thread per core is faster on a small CPU than two fighting for it

    model_path = arith.build_policy()
    agl.instrument(["openai"])

    heldout = arith.heldout_tasks(256)
    stream = arith.train_tasks(seed=0, exclude=heldout)
    train = [as_task(next(stream)) for _ in range(2048)]
    output_dir = args.output_dir or str(agl.agl_home() / "runs" / "demo")
    config = agl.RLConfig(
        model=str(model_path),
        algorithm="grpo",
        episodes=args.steps,
        batch_size=16,
        group_size=8,
        learning_rate=2e-3,
        max_new_tokens=24,
        temperature=1.0,
        eval_every=0,
        checkpoint_every=0,
        output_dir=output_dir,
    )
    store = agl.LightningStore()
    summary = agl.GRPOTrainer(config=config, store=store, n_workers=16).train(
        calc_agent, train_tasks=train, eval_tasks=[as_task(p) for p in heldout]
    )
    print(f"\nrun folder:  {summary['output_dir']}")
    print(f"checkpoint:  {summary['checkpoint']}")
    print(f"metrics:     {summary['metrics']}")
    print(f"log:         {summary['log']}")
    print(f"store:       {summary['store']}")
    print(f"total time:  {time.perf_counter() - started:.0f} s (model build included)")
    for mode in ("sampled", "greedy"):
        before, after = summary[f"{mode}_before"], summary[f"{mode}_after"]
        print(f"held-out accuracy ({mode}): {before:.3f} -> {after:.3f} ({after - before:+.3f})")


if __name__ == "__main__":
    main()
