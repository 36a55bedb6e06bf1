"""The README's main job (until the trainer lands): trace an agent over a few tasks, then read the
rollouts, spans and rewards back from the embedded store."""

from __future__ import annotations

import agentlightning as agl
from agl_core.graders import last_number
from agl_core.runner import Runner
from agl_core.tasksets import load_tasks


def calculator(expression: str) -> float:
    with agl.tracer.trace("calculator", {"expression": expression}):
        return float(eval(expression, {"__builtins__": {}}))  # demo only: trusted task text


def arithmetic_agent(task: dict, resources: dict) -> float:
    expression = task["question"].removeprefix("What is ").rstrip("?")
    answer = calculator(expression)
    agl.emit_message(f"answer: {answer:g}")
    return float(last_number(f"{answer:g}") == task["answer"])


def main() -> None:
    store = agl.LightningStore()
    agl.configure(store)
    tasks = load_tasks("math", "eval", n=5)
    store.enqueue_rollouts([{"input": t.input, "task_id": t.task_id, "mode": "test"} for t in tasks])
    Runner(arithmetic_agent, store).run()
    for rollout in store.query_rollouts(mode="test", newest_first=True, limit=len(tasks)):
        spans = store.query_spans(rollout.rollout_id)
        print(f"{rollout.rollout_id} {rollout.status:<9} reward={rollout.final_reward} spans={[s.name for s in spans]}")
    print(f"store: {store.url}")


if __name__ == "__main__":
    main()
