"""The engine's data: sampling parameters, samples, queued requests, and the rows of a running
batch with their shared KV cache (`KVBatch`, which rows leave and join between decoding steps)."""

from __future__ import annotations

import concurrent.futures
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

#: ``on_token(choice_index, token_id)``: told of each sampled token as the engine samples it.
TokenCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    #: How many alternatives per position to report (OpenAI ``top_logprobs``); 0 for none.
    top_logprobs: int = 0
    #: Keep generating after an end-of-sequence token (vLLM's ``ignore_eos``; for benchmarks).
    ignore_eos: bool = False


@dataclass
class Sample:
    """One generated sequence. `token_ids` are exactly the sampled ids, end-of-sequence token included
    when it was sampled; `text` is their decoding without special tokens, cut before a stop string."""

    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    top_logprobs: list[list[tuple[int, float]]] = field(default_factory=list)
    text: str = ""
    finish_reason: str = "length"
    #: the engine's `version` when this sample was generated.
    policy_version: int | None = None


@dataclass
class Job:
    prompt_ids: list[int]
    params: SamplingParams
    n: int
    on_token: TokenCallback | None = None
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    #: one per choice, filled as its row generates
    samples: list[Sample] = field(default_factory=list)


@dataclass
class Row:
    job: Job
    index: int  # choice index within the job
    generator: torch.Generator | None
    sample: Sample = field(default_factory=Sample)
    done: bool = False


def cache_kwarg(model: torch.nn.Module) -> str:
    """transformers 5 renamed the forward's ``past_key_values`` argument to ``cache``."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for value in (getattr(getattr(model, "generation_config", None), "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids


class KVBatch:
    """The rows being generated together and their shared state, kept aligned by batch position:
    `cache` (its length is ``attention.shape[1]``), `attention` (left padding is 0), `next_pos`
    (the position of each row's next token) and `tokens` (each row's last sampled token, not yet
    in the cache)."""

    def __init__(self, rows: list[Row], cache: Any, attention: torch.Tensor, next_pos: torch.Tensor, tokens: torch.Tensor) -> None:
        self.rows, self.cache, self.attention, self.next_pos, self.tokens = rows, cache, attention, next_pos, tokens

    def keep(self, kept: list[int]) -> None:
        """Keep only the batch positions `kept`; drop leading columns no remaining row attends to."""
        if not kept:  # every row finished: nothing left to select
            self.rows = []
            return
        if len(kept) < len(self.rows):
            index = torch.tensor(kept, dtype=torch.long, device=self.attention.device)
            self.cache.batch_select_indices(index)
            self.attention, self.next_pos, self.tokens = self.attention[index], self.next_pos[index], self.tokens[index]
            self.rows = [self.rows[b] for b in kept]
        if self.rows and joinable(self.cache):
            used = self.attention.any(0).nonzero()
            start = int(used[0]) if len(used) else 0
            if start > 0:
                self.attention = self.attention[:, start:]
                for layer in self.cache.layers:
                    layer.keys, layer.values = layer.keys[:, :, start:], layer.values[:, :, start:]

    def join(self, other: "KVBatch") -> None:
        """Append `other`'s rows, left-padding whichever cache is shorter."""
        width = max(self.attention.shape[1], other.attention.shape[1])
        for batch in (self, other):
            pad = width - batch.attention.shape[1]
            if pad:
                batch.attention = torch.nn.functional.pad(batch.attention, (pad, 0))
                for layer in batch.cache.layers:
                    layer.keys = torch.nn.functional.pad(layer.keys, (0, 0, pad, 0))
                    layer.values = torch.nn.functional.pad(layer.values, (0, 0, pad, 0))
        for mine, theirs in zip(self.cache.layers, other.cache.layers):
            mine.keys, mine.values = torch.cat([mine.keys, theirs.keys]), torch.cat([mine.values, theirs.values])
        self.attention = torch.cat([self.attention, other.attention])
        self.next_pos, self.tokens = torch.cat([self.next_pos, other.next_pos]), torch.cat([self.tokens, other.tokens])
        self.rows += other.rows


def joinable(cache: Any) -> bool:
    from transformers.cache_utils import DynamicLayer

    return all(type(layer) is DynamicLayer and layer.is_initialized for layer in cache.layers)
