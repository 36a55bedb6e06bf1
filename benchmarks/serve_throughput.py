"""Generation tokens/s of ``serve`` (concurrent HTTP requests, continuous batching) against bare
``transformers.generate`` on the same model, prompts and lengths, in one run.

Three scenarios: *fixed* lengths (every sequence generates exactly ``--max-tokens``: ``ignore_eos``
for serve, ``min_new_tokens`` for generate) measure generation itself; *natural* lengths (stop at
end-of-sequence, as the demo does) add what short answers cost per request (HTTP, chat template,
span). Baselines: one left-padded ``generate`` call over all prompts (the batched upper bound, no HTTP,
no spans) and ``generate`` one prompt at a time (what a naive server does). *Agents*: each of the
``--requests`` clients makes ``--turns`` requests one after another (as an agent does, turn by
turn; lengths vary between ``--max-tokens``/4 and ``--max-tokens``), against the best a static
batcher can do: one batched ``generate`` call per turn, over every client's request of that turn.
Tokens are counted as generated (up to and including the end-of-sequence token), never padding.

    python benchmarks/serve_throughput.py [--model PATH] [--requests 64] [--max-tokens 32] [--turns 4] [--threads N] [--repeats 3]

Default model: the demo's tiny model (built and cached on first use).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the demo's task lives in examples/

import openai
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from agl_core.store import LightningStore
from agl_trl.serve.app import ModelServer
from examples.demo import arith


def prompts(n: int) -> list[list[dict]]:
    tasks = arith.heldout_tasks(n)
    return [[{"role": "system", "content": arith.SYSTEM_PROMPT}, {"role": "user", "content": t.question}] for t in tasks]


def generated(ids: list[int], eos: int, pad: int) -> int:
    """Tokens a row generated: up to and including its first end-of-sequence token."""
    for i, token in enumerate(ids):
        if token == eos:
            return i + 1
    return len([t for t in ids if t != pad])


def bare_generate(model, tokenizer, chats, max_tokens: int, batched: bool, fixed: bool) -> tuple[int, float]:
    tools = [arith.CALCULATOR_TOOL]
    encoded = [tokenizer.apply_chat_template(c, tools=tools, add_generation_prompt=True, return_dict=False) for c in chats]
    groups = [encoded] if batched else [[e] for e in encoded]
    tokens, start = 0, time.perf_counter()
    with torch.inference_mode():
        for group in groups:
            batch = tokenizer.pad({"input_ids": group}, padding=True, padding_side="left", return_tensors="pt")
            out = model.generate(
                **batch, do_sample=True, temperature=1.0, top_p=1.0, max_new_tokens=max_tokens,
                pad_token_id=tokenizer.pad_token_id, min_new_tokens=max_tokens if fixed else None,
            )  # fmt: skip
            for row in out[:, batch["input_ids"].shape[1] :].tolist():
                tokens += generated(row, tokenizer.eos_token_id, tokenizer.pad_token_id)
    return tokens, time.perf_counter() - start


async def through_serve(base_url: str, chats, max_tokens: int, fixed: bool) -> tuple[int, float]:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    start = time.perf_counter()
    replies = await asyncio.gather(
        *(
            client.chat.completions.create(
                model="policy", messages=c, tools=[arith.CALCULATOR_TOOL], temperature=1.0, max_tokens=max_tokens,
                extra_body={"ignore_eos": True} if fixed else None,
            )  # fmt: skip
            for c in chats
        )
    )
    elapsed = time.perf_counter() - start
    await client.close()
    return sum(r.usage.completion_tokens for r in replies), elapsed


def turn_lengths(clients: int, turns: int, max_tokens: int) -> list[list[int]]:
    """Each client's max_tokens per turn: a fixed spread between max_tokens/4 and max_tokens."""
    low = max(1, max_tokens // 4)
    return [[low + (c * 7 + t * 13) % (max_tokens - low + 1) for t in range(turns)] for c in range(clients)]


def agents_generate(model, tokenizer, chats, lengths: list[list[int]]) -> tuple[int, float]:
    """A static batcher: every turn is one batched call, as long as that turn's longest request."""
    encoded = [tokenizer.apply_chat_template(c, tools=[arith.CALCULATOR_TOOL], add_generation_prompt=True, return_dict=False) for c in chats]
    batch = tokenizer.pad({"input_ids": encoded}, padding=True, padding_side="left", return_tensors="pt")
    tokens, start = 0, time.perf_counter()
    with torch.inference_mode():
        for turn in range(len(lengths[0])):
            wanted = [row[turn] for row in lengths]
            model.generate(
                **batch, do_sample=True, temperature=1.0, max_new_tokens=max(wanted), min_new_tokens=max(wanted),
                pad_token_id=tokenizer.pad_token_id,
            )  # fmt: skip
            tokens += sum(wanted)  # each client keeps only its own length's worth
    return tokens, time.perf_counter() - start


async def agents_serve(base_url: str, chats, lengths: list[list[int]]) -> tuple[int, float]:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)

    async def agent(chat, wanted: list[int]) -> int:
        total = 0
        for max_tokens in wanted:
            reply = await client.chat.completions.create(
                model="policy", messages=chat, tools=[arith.CALCULATOR_TOOL], temperature=1.0, max_tokens=max_tokens,
                extra_body={"ignore_eos": True},
            )  # fmt: skip
            total += reply.usage.completion_tokens
        return total

    start = time.perf_counter()
    tokens = sum(await asyncio.gather(*(agent(c, w) for c, w in zip(chats, lengths))))
    elapsed = time.perf_counter() - start
    await client.close()
    return tokens, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model folder (default: the demo's tiny model)")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--turns", type=int, default=4, help="requests per client in the agents scenario")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3, help="runs per contender; the median rate is reported")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.model is None:
        args.model = str(arith.build_policy())
    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    chats = prompts(args.requests)
    bare_generate(model, tokenizer, chats[:4], 4, batched=True, fixed=False)  # warm-up
    print(f"{args.requests} requests, max_tokens {args.max_tokens}, {args.threads} torch threads, model {args.model}")
    with ModelServer(model, tokenizer, store=LightningStore("memory://")) as server:
        asyncio.run(through_serve(server.base_url, chats[:4], 4, fixed=False))  # warm-up
        for fixed in (True, False):
            compare(server, model, tokenizer, chats, args, fixed)
        compare_agents(server, model, tokenizer, chats, args)


def median(runs: list[tuple[int, float]]) -> tuple[int, float]:
    return sorted(runs, key=lambda r: r[0] / r[1])[len(runs) // 2]


def compare_agents(server: ModelServer, model, tokenizer, chats, args: argparse.Namespace) -> None:
    lengths = turn_lengths(len(chats), args.turns, args.max_tokens)
    static = median([agents_generate(model, tokenizer, chats, lengths) for _ in range(args.repeats)])
    served = median([asyncio.run(agents_serve(server.base_url, chats, lengths)) for _ in range(args.repeats)])
    print(f"agents ({len(chats)} clients x {args.turns} turns, each turn waits for the previous):")
    for name, (tokens, seconds) in (("generate, one batched call per turn", static), ("serve, continuous batching", served)):
        print(f"  {name:<36} {tokens:>6} tokens in {seconds:6.2f}s = {tokens / seconds:8.0f} tokens/s")
    print(f"  serve / per-turn batched generate: {(served[0] / served[1]) / (static[0] / static[1]):.2f}x")


def compare(server: ModelServer, model, tokenizer, chats, args: argparse.Namespace, fixed: bool) -> None:
    results = {}
    for name, batched in (("generate, one batched call", True), ("generate, one prompt at a time", False)):
        results[name] = median(
            [bare_generate(model, tokenizer, chats, args.max_tokens, batched, fixed) for _ in range(args.repeats)]
        )
    results["serve, concurrent HTTP"] = median(
        [asyncio.run(through_serve(server.base_url, chats, args.max_tokens, fixed)) for _ in range(args.repeats)]
    )
    print("fixed lengths:" if fixed else "natural lengths (stop at end-of-sequence):")
    rates = {name: tokens / seconds for name, (tokens, seconds) in results.items()}
    for name, (tokens, seconds) in results.items():
        print(f"  {name:<32} {tokens:>6} tokens in {seconds:6.2f}s = {rates[name]:8.0f} tokens/s")
    serve = rates["serve, concurrent HTTP"]
    print(f"  serve / batched generate:    {serve / rates['generate, one batched call']:.2f}x")
    print(f"  serve / sequential generate: {serve / rates['generate, one prompt at a time']:.2f}x")

if __name__ == "__main__":
    main()
