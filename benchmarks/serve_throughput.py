"""Generation tokens/s of ``serve`` (concurrent HTTP requests, micro-batched) against bare
``transformers.generate`` on the same model, prompts and lengths, in one run.

Two scenarios: *fixed* lengths (every sequence generates exactly ``--max-tokens``: ``ignore_eos``
for serve, ``min_new_tokens`` for generate) measure generation itself; *natural* lengths (stop at
end-of-sequence, as the demo does) add what short answers cost per request (HTTP, chat template,
span). Baselines: one left-padded ``generate`` call over all prompts (the batched upper bound, no HTTP,
no spans) and ``generate`` one prompt at a time (what a naive server does). Tokens are counted
as generated (up to and including the end-of-sequence token), never padding.

    python benchmarks/serve_throughput.py [--model PATH] [--requests 64] [--max-tokens 32] [--threads N] [--repeats 3]

Default model: the demo's tiny model (built and cached on first use).
"""

from __future__ import annotations

import argparse
import asyncio
import time

import openai
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from agl_core.store import LightningStore
from agl_trl import arith
from agl_trl.serve import ModelServer


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model folder (default: the demo's tiny model)")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3, help="runs per contender; the median rate is reported")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.model is None:
        from agl_trl.tiny_model import build_tiny_model

        args.model = str(build_tiny_model())
    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    chats = prompts(args.requests)
    bare_generate(model, tokenizer, chats[:4], 4, batched=True, fixed=False)  # warm-up
    print(f"{args.requests} requests, max_tokens {args.max_tokens}, {args.threads} torch threads, model {args.model}")
    with ModelServer(model, tokenizer, store=LightningStore("memory://")) as server:
        asyncio.run(through_serve(server.base_url, chats[:4], 4, fixed=False))  # warm-up
        for fixed in (True, False):
            compare(server, model, tokenizer, chats, args, fixed)


def compare(server: ModelServer, model, tokenizer, chats, args: argparse.Namespace, fixed: bool) -> None:
    def median(runs: list[tuple[int, float]]) -> tuple[int, float]:
        return sorted(runs, key=lambda r: r[0] / r[1])[len(runs) // 2]

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
