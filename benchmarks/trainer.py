"""Update tokens/s of our GRPO step against TRL's ``GRPOTrainer`` on the same model, batch and
sequence lengths, in one run.

What is measured: the *update* only — from a batch of already sampled completions to updated
weights (forward over prompt + completion, clipped GRPO loss, backward, grad clipping, AdamW
step). Generation is excluded on both sides: TRL generates the batch once
(``_generate_and_score_completions``), then its ``compute_loss`` + backward + optimizer step is
timed on that batch; ours (`agl_trl.update.PolicyUpdate`) is timed on the very same prompt and completion
token ids and rewards. Same model weights at the start of each repeat, same loss settings
(``loss_type=dapo``, ``beta=0``, one update per batch), same precision (float32: TRL's
default bf16 autocast, which it applies on CPU too, is turned off). Tokens = unpadded prompt + completion
tokens of the batch; both sides are charged the same count.

Then multi-turn rows (TRL has none): the same completions cut into 3-call rollouts with inserted
tokens between calls, updated once as trajectory rows (one sequence per rollout, inserted tokens
masked) and once as one row per call, which re-reads the shared context at every call.

    python benchmarks/trainer.py [--tasks 8] [--group 8] [--completion 32] [--hidden 256] [--layers 4] [--repeats 5]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the demo's task lives in examples/

import torch
from datasets import Dataset

from agl_trl.config import RLConfig
from agl_trl.objectives import objective_for
from agl_trl.tiny_model import CHAT_TEMPLATE, TinyModelSpec, new_model, train_tokenizer
from agl_trl.trajectories import Batch
from agl_trl.update import PolicyUpdate
from examples.demo import arith


def build(hidden: int, layers: int) -> tuple[Any, Any]:
    """A random-init Llama of the tiny model's architecture (the update cost does not depend on training)."""
    spec = TinyModelSpec(hidden_size=hidden, num_layers=layers, intermediate_size=3 * hidden, num_heads=4)
    chats = arith.warmstart_conversations(500, seed=0, tool_rate=0.5, exclude=[])
    from transformers.utils.chat_template_utils import render_jinja_template

    tokenizer = train_tokenizer(render_jinja_template(chats, tools=[arith.CALCULATOR_TOOL], chat_template=CHAT_TEMPLATE)[0], spec)
    torch.manual_seed(0)
    return new_model(tokenizer, spec), tokenizer


def trl_batch(model: Any, tokenizer: Any, args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    from trl import GRPOConfig, GRPOTrainer

    prompts = [arith.prompt_messages(t) for t in arith.heldout_tasks(args.tasks, seed=5)]
    config = GRPOConfig(
        output_dir="/tmp/agl-bench-trl", per_device_train_batch_size=args.tasks * args.group,
        num_generations=args.group, max_completion_length=args.completion, beta=0.0, loss_type="dapo",
        learning_rate=1e-5, report_to=[], use_cpu=not torch.cuda.is_available(), logging_steps=1, save_strategy="no",
        bf16=False,  # TRL defaults to bf16 autocast, on CPU too; ours computes in the model dtype (float32 here)
        generation_kwargs={"min_new_tokens": args.completion},  # equal lengths: every row is `completion` long
    )  # fmt: skip

    def reward(completions: list[Any], **_: Any) -> list[float]:
        return [float(i % 2) for i in range(len(completions))]  # fixed, half the rows rewarded: non-zero advantages

    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=config, train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]), processing_class=tokenizer)
    rows = [{"prompt": p} for p in prompts for _ in range(args.group)]
    model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer's loop, which we bypass
    inputs = trainer._generate_and_score_completions(rows)
    return trainer, inputs


def time_trl(trainer: Any, model: Any, inputs: dict[str, Any]) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0)
    model.train()
    start = time.perf_counter()
    loss = trainer.compute_loss(model, inputs)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def ours_batch(inputs: dict[str, Any], group: int) -> Batch:
    """TRL's rows as ours: each completion one rollout's one call (no recorded log-probs: ratio 1, as TRL's)."""
    batch = Batch()
    prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"].bool()
    completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"].bool()
    for i in range(prompt_ids.size(0)):
        reward = float(i % 2)
        batch.rewards.append(reward)
        batch.groups.append(str(i // group))
        batch.add_row(i, None, [(prompt_ids[i][prompt_mask[i]].tolist(), completion_ids[i][completion_mask[i]].tolist(), None, reward)])
    return batch


def multi_turn(batch: Batch, turns: int = 3) -> tuple[Batch, Batch]:
    """The same rows as `turns`-call rollouts: each completion cut into `turns` replies with a
    5-token "tool result" between them; once as trajectory rows, once as one row per call."""
    merged, separate = Batch(), Batch()
    for i, (prompt, completion) in enumerate(zip(batch.prompts, batch.completions)):
        size = -(-len(completion) // turns)
        replies = [completion[k : k + size] for k in range(0, len(completion), size)]
        calls, context = [], list(prompt)
        for reply in replies:
            calls.append((list(context), reply, None, batch.rewards[i]))
            context += reply + prompt[-5:]  # the inserted tokens before the next call
        for target in (merged, separate):
            target.rewards.append(batch.rewards[i])
            target.groups.append(batch.groups[i])
        merged.add_row(i, None, calls)
        for call in calls:
            separate.add_row(i, None, [call])
    return merged, separate


def time_ours(model: Any, tokenizer: Any, batch: Batch, args: argparse.Namespace) -> float:
    config = RLConfig(model="bench", batch_size=args.tasks, group_size=args.group, max_new_tokens=args.completion, learning_rate=1e-5)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    update = PolicyUpdate(config, objective_for(config), model, tokenizer, optimizer, scheduler)
    start = time.perf_counter()
    update(batch)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--completion", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    model, tokenizer = build(args.hidden, args.layers)
    initial = copy.deepcopy(model.state_dict())
    trainer, inputs = trl_batch(model, tokenizer, args)
    batch = ours_batch(inputs, args.group)
    tokens = batch.tokens
    trl_times, our_times = [], []
    for _ in range(args.repeats):  # interleaved, each from the same weights
        model.load_state_dict(initial)
        trl_times.append(time_trl(trainer, model, inputs))
        model.load_state_dict(initial)
        our_times.append(time_ours(model, tokenizer, batch, args))
    trl_s, ours_s = statistics.median(trl_times), statistics.median(our_times)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"model: {params:.2f}M params; batch: {len(batch.prompts)} rows ({args.tasks} tasks x {args.group}), "
          f"{tokens} tokens (completions {args.completion}); torch threads {torch.get_num_threads()}; median of {args.repeats}")  # fmt: skip
    print(f"TRL GRPOTrainer update: {trl_s * 1e3:8.1f} ms  {tokens / trl_s:10.0f} tokens/s")
    print(f"agl_trl GRPO update:    {ours_s * 1e3:8.1f} ms  {tokens / ours_s:10.0f} tokens/s")
    print(f"ratio (ours / TRL tokens/s): {trl_s / ours_s:.2f}x")
    merged, separate = multi_turn(batch)
    turn_times: dict[str, list[float]] = {"trajectory": [], "transition": []}
    for _ in range(args.repeats):
        for name, rows in (("trajectory", merged), ("transition", separate)):
            model.load_state_dict(initial)
            turn_times[name].append(time_ours(model, tokenizer, rows, args))
    trained = merged.trained_tokens
    print(f"multi-turn (3 calls per rollout, {trained} sampled tokens; the same loss either way):")
    for name, rows in (("trajectory", merged), ("transition", separate)):
        took = statistics.median(turn_times[name])
        print(f"  agl_trl {name} rows: {len(rows.prompts):4d} rows {rows.tokens:6d} tokens read {took * 1e3:8.1f} ms  "
              f"{trained / took:10.0f} sampled tokens/s")  # fmt: skip


if __name__ == "__main__":
    main()
