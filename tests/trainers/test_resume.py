"""Resume: stop after step k, resume from the checkpoint, and step k+1 gives the same weights as an
uninterrupted run with the same seed (sampling is seeded per (seed, step, task, repeat, call))."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

import agentlightning as agl
from agl_core.tracing.emit import emit_tool_call
from agl_core.training.algorithm import fit
from agl_trl.checkpoints import (
    STATE_FILE,
    latest_checkpoint,
    list_checkpoints,
    load_state,
    prune_checkpoints,
)
from agl_trl.rl import RLAlgorithm
from tests.trainers.rl_fixtures import CALC, HI, length_reward, rl_config

TASKS = [agl.Task(task_id="a", input=HI), agl.Task(task_id="b", input=CALC), agl.Task(task_id="c", input={"question": "Say hello", "answer": 1})]


def agent(task, resources):
    text = emit_tool_call(None, [{"role": "user", "content": task["question"]}]).choices[0].message.content or ""
    return length_reward(text)


def train(policy: Path, out: Path, episodes: int, resume: bool = False, eval_tasks=(), **overrides) -> dict:
    store = agl.LightningStore("memory://")
    agl.configure(store=store)
    config = rl_config(policy, out, episodes=episodes, checkpoint_every=1, seed=7, group_size=4, **overrides)
    # one worker: requests reach the server one at a time, so batching cannot perturb the numerics
    return fit(RLAlgorithm(config, resume=resume), agent, store, TASKS, list(eval_tasks), n_workers=1)


def weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    name = "adapter_model.safetensors" if (checkpoint / "adapter_model.safetensors").exists() else "model.safetensors"
    return load_file(str(checkpoint / name))


def test_resumed_run_matches_an_uninterrupted_one(policy, tmp_path):
    k = 2
    full = train(policy, tmp_path / "full", episodes=k + 1)
    train(policy, tmp_path / "split", episodes=k)
    assert latest_checkpoint(tmp_path / "split").name == f"step-{k}"
    resumed = train(policy, tmp_path / "split", episodes=k + 1, resume=True)
    assert resumed["run_id"] == load_state(tmp_path / "split" / "checkpoints" / f"step-{k}")["run_id"]

    a, b = weights(Path(full["checkpoint"])), weights(Path(resumed["checkpoint"]))
    assert Path(resumed["checkpoint"]).name == f"step-{k + 1}" and a.keys() == b.keys()
    start = weights(tmp_path / "full" / "checkpoints" / f"step-{k}")
    assert any(not torch.equal(a[n], start[n]) for n in a)  # step k+1 changed the weights...
    assert all(torch.equal(a[n], b[n]) for n in a)  # ...identically in both runs
    full_state = load_state(Path(full["checkpoint"]))["optimizer"]["state"]
    resumed_state = load_state(Path(resumed["checkpoint"]))["optimizer"]["state"]
    assert all(torch.equal(full_state[i]["exp_avg"], resumed_state[i]["exp_avg"]) for i in full_state)
    steps = [line for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert len(steps) == k + 1


def test_resumed_lora_run_continues_its_adapter(policy, tmp_path):
    lora = {"lora": True, "lora_rank": 4, "learning_rate": 5e-2}
    full = train(policy, tmp_path / "full", episodes=2, **lora)
    train(policy, tmp_path / "split", episodes=1, **lora)
    resumed = train(policy, tmp_path / "split", episodes=2, resume=True, **lora)
    a, b = weights(Path(full["checkpoint"])), weights(Path(resumed["checkpoint"]))
    start = weights(tmp_path / "split" / "checkpoints" / "step-1")
    assert a.keys() == b.keys() and all("lora" in k for k in a)
    assert any(not torch.equal(b[n], start[n]) for n in b)  # step 2 trained the adapter it resumed from
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_save_total_limit_keeps_the_newest_and_the_best_checkpoint(policy, tmp_path):
    train(policy, tmp_path, episodes=4, eval_tasks=TASKS, eval_every=1, save_total_limit=1, learning_rate=5e-2)
    steps = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    best = max(steps, key=lambda m: (m["heldout_reward"], -m["step"]))["step"]  # the earlier step on a tie
    assert [p.name for p in list_checkpoints(tmp_path)] == [f"step-{s}" for s in sorted({best, 4})]


def test_pruning_spares_the_best_scored_checkpoint(tmp_path):
    scores = {1: 0.5, 2: 0.9, 3: 0.4, 4: 0.9, 5: None}
    for step in scores:
        folder = tmp_path / "checkpoints" / f"step-{step}"
        folder.mkdir(parents=True)
        (folder / STATE_FILE).write_bytes(b"")
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "heldout_reward": r}) + "\n" for s, r in scores.items()))
    deleted = prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-2", "step-4", "step-5"]  # best (first of equals) + newest 2
    assert sorted(p.name for p in deleted) == ["step-1", "step-3"] and not any(p.exists() for p in deleted)
