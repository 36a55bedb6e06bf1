"""Plain-torch proof of the learning core (no store, no server): build + warm-start the tiny model,
then GRPO on the calculator task, measuring held-out accuracy before and after.

    python -m agl_trl._experiment_arith [--steps 30] [--force-build]

Rollouts mirror the real pipeline: each LLM call is a (prompt ids, sampled ids) triplet, the tool
call is parsed from the text and answered with a ``tool`` message, and every call of an episode gets
the episode's advantage.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import dataclass, field

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from . import arith
from .losses import grpo_advantages, grpo_loss, rloo_advantages, rloo_loss, token_logps
from .tiny_model import TinyModelSpec, build_tiny_model

_TOOL_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.S)
TOOLS = [arith.CALCULATOR_TOOL]


@dataclass
class Episode:
    task: arith.ArithTask
    calls: list[tuple[list[int], list[int]]] = field(default_factory=list)
    reward: float = 0.0
    used_tool: bool = False


@torch.no_grad()
def generate(
    model: torch.nn.Module, tok: PreTrainedTokenizerBase, prompts: list[list[int]], temperature: float, max_new: int
) -> list[list[int]]:
    """Batched generation; each result ends at (and includes) the first eos."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), tok.pad_token_id, dtype=torch.long)
    attention = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(p)
        attention[i, width - len(p) :] = 1
    sampling = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0} if temperature > 0 else {"do_sample": False}
    out = model.generate(
        input_ids=ids,
        attention_mask=attention,
        max_new_tokens=max_new,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **sampling,
    )[:, width:].tolist()
    results = []
    for row in out:
        end = row.index(tok.eos_token_id) + 1 if tok.eos_token_id in row else len(row)
        results.append(row[:end])
    return results


def _parse_expression(text: str) -> str | None:
    match = _TOOL_CALL.search(text)
    if match is None:
        return None
    try:
        return str(json.loads(match[1])["arguments"]["expression"])
    except (ValueError, KeyError, TypeError):
        return ""


def run_episodes(
    model: torch.nn.Module, tok: PreTrainedTokenizerBase, tasks: list[arith.ArithTask], temperature: float, max_new: int = 24
) -> list[Episode]:
    """Turn 1: answer or call the calculator; turn 2 (tool callers only): answer from the tool result."""
    episodes = [Episode(task) for task in tasks]
    convs = [arith.prompt_messages(t) for t in tasks]
    prompts = [tok.apply_chat_template(c, tools=TOOLS, add_generation_prompt=True)["input_ids"] for c in convs]
    first = generate(model, tok, prompts, temperature, max_new)
    finals: dict[int, str] = {}
    second: list[int] = []
    for i, (prompt, response) in enumerate(zip(prompts, first)):
        episodes[i].calls.append((prompt, response))
        text = tok.decode(response, skip_special_tokens=True)
        expression = _parse_expression(text)
        if expression is None:
            finals[i] = text
            continue
        episodes[i].used_tool = True
        try:
            result = str(arith.calculate(expression))
        except ValueError:
            result = "error: invalid expression"
        convs[i] += [
            {"role": "assistant", "content": "", "tool_calls": [arith.tool_call(expression)]},
            {"role": "tool", "tool_call_id": "call_0", "content": result},
        ]
        second.append(i)
    if second:
        prompts2 = [tok.apply_chat_template(convs[i], tools=TOOLS, add_generation_prompt=True)["input_ids"] for i in second]
        for i, prompt, response in zip(second, prompts2, generate(model, tok, prompts2, temperature, max_new)):
            episodes[i].calls.append((prompt, response))
            finals[i] = tok.decode(response, skip_special_tokens=True)
    for i, episode in enumerate(episodes):
        episode.reward = arith.reward(finals[i], episode.task)
    return episodes


def evaluate(model: torch.nn.Module, tok: PreTrainedTokenizerBase, tasks: list[arith.ArithTask], temperature: float) -> tuple[float, float]:
    """(accuracy, tool-call rate) over ``tasks``, one episode each."""
    torch.manual_seed(0)
    episodes = run_episodes(model, tok, tasks, temperature)
    return sum(e.reward for e in episodes) / len(episodes), sum(e.used_tool for e in episodes) / len(episodes)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=16, help="tasks per step")
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--beta", type=float, default=0.0)
    parser.add_argument("--algorithm", choices=["grpo", "rloo"], default="grpo")
    parser.add_argument("--warmstart-steps", type=int, default=TinyModelSpec.warmstart_steps)
    parser.add_argument("--tool-rate", type=float, default=TinyModelSpec.tool_rate)
    parser.add_argument("--hidden", type=int, default=TinyModelSpec.hidden_size)
    parser.add_argument("--layers", type=int, default=TinyModelSpec.num_layers)
    parser.add_argument("--force-build", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    spec = TinyModelSpec(
        warmstart_steps=args.warmstart_steps, tool_rate=args.tool_rate, hidden_size=args.hidden, num_layers=args.layers,
        intermediate_size=3 * args.hidden,
    )
    path = build_tiny_model(spec, force=args.force_build)
    t_build = time.perf_counter() - t0
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    ref = AutoModelForCausalLM.from_pretrained(path) if args.beta else None
    n_params = sum(p.numel() for p in model.parameters())
    heldout = arith.heldout_tasks(seed=spec.heldout_seed)
    model.eval()
    before_s, tool_s0 = evaluate(model, tok, heldout, args.temperature)
    before_g, tool_g0 = evaluate(model, tok, heldout, 0.0)
    t_eval = time.perf_counter() - t0 - t_build
    print(f"model {n_params / 1e6:.2f}M params, build {t_build:.1f}s; before: sampled {before_s:.3f} (tool {tool_s0:.2f}) "
          f"greedy {before_g:.3f} (tool {tool_g0:.2f}); eval {t_eval:.1f}s", flush=True)

    torch.manual_seed(args.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    stream = arith.train_tasks(seed=10_000 + args.seed, exclude=heldout)
    t_rl = time.perf_counter()
    for step in range(args.steps):
        tasks = [next(stream) for _ in range(args.batch_size)]
        model.eval()
        episodes = run_episodes(model, tok, [t for t in tasks for _ in range(args.group_size)], args.temperature)
        rewards = torch.tensor([e.reward for e in episodes])
        groups = [i // args.group_size for i in range(len(episodes))]
        if args.algorithm == "grpo":
            advantages = grpo_advantages(rewards, groups)
        else:
            advantages = rloo_advantages(rewards, groups)
        rows = [(p, r, float(advantages[i])) for i, e in enumerate(episodes) for p, r in e.calls]
        model.train()
        logps, mask = token_logps(model, [r[0] for r in rows], [r[1] for r in rows], pad_token_id=tok.pad_token_id,
                                  temperature=args.temperature)
        adv = torch.tensor([r[2] for r in rows])
        ref_logps = None
        if ref is not None:
            with torch.no_grad():
                ref_logps, _ = token_logps(ref, [r[0] for r in rows], [r[1] for r in rows], pad_token_id=tok.pad_token_id,
                                           temperature=args.temperature)
        if args.algorithm == "grpo":
            loss, metrics = grpo_loss(logps, None, adv, mask, ref_logps=ref_logps, beta=args.beta)
        else:
            loss, metrics = rloo_loss(logps, None, adv, mask)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tool_rate = sum(e.used_tool for e in episodes) / len(episodes)
        print(f"step {step + 1}: reward {rewards.mean():.3f} tool {tool_rate:.2f} loss {loss.item():+.4f} "
              f"rows {len(rows)} {time.perf_counter() - t_rl:.1f}s", flush=True)
    t_train = time.perf_counter() - t_rl
    model.eval()
    after_s, tool_s1 = evaluate(model, tok, heldout, args.temperature)
    after_g, tool_g1 = evaluate(model, tok, heldout, 0.0)
    total = time.perf_counter() - t0
    print(f"train {t_train:.1f}s, total {total:.1f}s (build {t_build:.1f}s)")
    print(f"tool-call rate (sampled): {tool_s0:.2f} -> {tool_s1:.2f}; (greedy): {tool_g0:.2f} -> {tool_g1:.2f}")
    print(f"held-out accuracy (sampled): {before_s:.3f} -> {after_s:.3f} ({after_s - before_s:+.3f})")
    print(f"held-out accuracy (greedy): {before_g:.3f} -> {after_g:.3f} ({after_g - before_g:+.3f})")


if __name__ == "__main__":
    main()
