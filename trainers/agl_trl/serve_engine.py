"""Batched sampling on a transformers causal LM: the generation engine behind ``serve``.

Requests that arrive within ``batch_window_s`` of each other (up to ``max_batch_size`` sequences,
and for at most ``max_wait_s`` after the first) are generated together in one left-padded forward pass per token, with a KV cache; finished rows
are dropped from the batch as they finish. Our own loop, rather than ``model.generate``, because
rows of one batch differ in temperature, top_p, seed, stop strings and length, and because we
need each sampled token's log-probability.

**Log-probabilities** (``Sample.logprobs``): for each sampled token, ``log_softmax(logits / T)``
at that position, where ``T`` is the request's temperature, computed *before* top-p filtering —
the same quantity a trainer gets from its own forward pass with logits divided by the sampling
temperature. With ``temperature == 0`` (greedy) ``T`` is taken as 1.

**Streaming**: a job may carry ``on_token(choice_index, token_id)``, called from the worker thread
right after each token is sampled (keep it cheap and thread-safe: it runs inside the batch loop).

Sampling never touches torch's global RNG (a trainer in the same process may rely on it): rows
with a ``seed`` get their own generator, the others share the engine's private one.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

log = logging.getLogger("agentlightning.serve")

#: ``on_token(choice_index, token_id)``: told of each sampled token as the engine samples it.
TokenCallback = Callable[[int, int], None]

#: Default cap on the sequences generated together (a request with ``n`` choices counts ``n``).
DEFAULT_MAX_BATCH_SIZE = 64
#: The batcher closes a batch once no request arrived for this long ...
DEFAULT_BATCH_WINDOW_S = 0.005
#: ... or this long after the batch's first request, whichever comes first.
DEFAULT_MAX_WAIT_S = 0.05


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
class _Job:
    prompt_ids: list[int]
    params: SamplingParams
    n: int
    on_token: TokenCallback | None = None
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)


@dataclass
class _Row:
    job: _Job
    index: int  # choice index within the job
    generator: torch.Generator | None
    sample: Sample = field(default_factory=Sample)
    done: bool = False


def _cache_kwarg(model: torch.nn.Module) -> str:
    """transformers 5 renamed the forward's ``past_key_values`` argument to ``cache``."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for value in (getattr(getattr(model, "generation_config", None), "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids


class BatchedGenerator:
    """``submit(prompt_ids, params, n)`` from any thread; one worker thread owns the model.

    ``lock`` is held for the whole of each batch: hold it yourself (e.g. during an optimizer step
    on the same weights) and no generation runs meanwhile.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        batch_window_s: float = DEFAULT_BATCH_WINDOW_S,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
    ) -> None:
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.batch_window_s = batch_window_s
        self.max_wait_s = max_wait_s
        self.lock = threading.RLock()
        #: policy version stamped on every sample; change it under `lock` together with the weights.
        self.version: int | None = None
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._rng = torch.Generator().manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)
        self._thread: threading.Thread | None = None
        self.set_model(model)

    # --- model --------------------------------------------------------------------------------
    def set_model(self, model: Any) -> None:
        with self.lock:
            self.model = model
            self._cache_kwarg = _cache_kwarg(model)
            self.eos_ids = _eos_ids(model, self.tokenizer)
            pad = self.tokenizer.pad_token_id
            self.pad_id = pad if pad is not None else min(self.eos_ids, default=0)

    @property
    def context_length(self) -> int:
        config = getattr(self.model, "config", None)
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return int(getattr(self.tokenizer, "model_max_length", 2048) or 2048)

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._worker, name="agl-serve-engine", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def submit(
        self, prompt_ids: Sequence[int], params: SamplingParams, n: int = 1, *, on_token: TokenCallback | None = None
    ) -> concurrent.futures.Future:
        """Queue a generation; the future resolves to ``n`` `Sample`s. `on_token`: see the module doc."""
        job = _Job(list(prompt_ids), params, n, on_token)
        self._queue.put(job)
        return job.future

    def generate(self, prompt_ids: Sequence[int], params: SamplingParams, n: int = 1) -> list[Sample]:
        """Synchronous generation in the calling thread (no batching with others)."""
        job = _Job(list(prompt_ids), params, n)
        self._run([job])
        return job.future.result()

    def _worker(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs, rows = [job], job.n
            first = time.monotonic()
            deadline = first + self.batch_window_s
            stopping = False
            while rows < self.max_batch_size:
                try:
                    nxt = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                jobs.append(nxt)
                rows += nxt.n
                # requests still streaming in: wait for a quiet gap, but never past max_wait_s
                deadline = min(time.monotonic() + self.batch_window_s, first + self.max_wait_s)
            self._run(jobs)
            if stopping:
                return

    def _run(self, jobs: list[_Job]) -> None:
        try:
            with self.lock:
                self._generate(jobs)
        except Exception as exc:  # a failed batch fails its requests, never the worker
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)

    # --- generation ---------------------------------------------------------------------------
    def _rows(self, jobs: list[_Job]) -> list[_Row]:
        rows = []
        for job in jobs:
            for i in range(job.n):
                seed = job.params.seed
                gen = torch.Generator().manual_seed((seed * 1_000_003 + i) % (2**63)) if seed is not None else None
                rows.append(_Row(job, i, gen))
        return rows

    @torch.inference_mode()
    def _generate(self, jobs: list[_Job]) -> None:
        model = self.model
        was_training = model.training
        model.eval()  # the trainer may have left it in train mode (dropout)
        try:
            rows = self._rows(jobs)
            self._decode_loop(model, rows)
        finally:
            model.train(was_training)
        for row in rows:
            row.sample.policy_version = self.version
        for job in jobs:
            job.future.set_result([r.sample for r in rows if r.job is job])

    def _decode_loop(self, model: Any, rows: list[_Row]) -> None:
        device = next(model.parameters()).device
        width = max(len(r.job.prompt_ids) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids = row.job.prompt_ids
            input_ids[i, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention[i, width - len(ids) :] = 1
        input_ids, attention = input_ids.to(device), attention.to(device)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        limits = [min(r.job.params.max_tokens, self.context_length - len(r.job.prompt_ids)) for r in rows]

        from transformers import DynamicCache

        cache = DynamicCache(config=model.config) if hasattr(model, "config") else DynamicCache()
        kwargs = {self._cache_kwarg: cache, "use_cache": True, "logits_to_keep": 1}
        logits = model(input_ids=input_ids, attention_mask=attention, position_ids=positions, **kwargs).logits[:, -1]
        active = list(range(len(rows)))  # batch position -> row index
        next_pos = attention.sum(-1)
        while True:
            tokens = self._sample(logits.float(), [rows[i] for i in active])
            keep = []
            for b, (i, token) in enumerate(zip(active, tokens.tolist())):  # one device sync per step
                if not self._append(rows[i], token, limits[i]):
                    keep.append(b)
            if not keep:
                return
            if len(keep) < len(active):
                index = torch.tensor(keep, device=device)
                cache.batch_select_indices(index)
                attention, next_pos, tokens = attention[index], next_pos[index], tokens[index]
                active = [active[b] for b in keep]
            attention = torch.cat([attention, attention.new_ones((len(active), 1))], dim=-1)
            logits = model(
                input_ids=tokens.view(-1, 1).to(device),
                attention_mask=attention,
                position_ids=next_pos.view(-1, 1),
                **kwargs,
            ).logits[:, -1]
            next_pos = next_pos + 1

    def _sample(self, logits: torch.Tensor, rows: list[_Row]) -> torch.Tensor:
        """Pick one token per row; record its log-probability (and top alternatives) on the row."""
        params = [r.job.params for r in rows]
        temps = torch.tensor([p.temperature if p.temperature > 0 else 1.0 for p in params], device=logits.device)
        logp = torch.log_softmax(logits / temps[:, None], dim=-1)
        tokens = logp.argmax(-1)
        sampled = [b for b, p in enumerate(params) if p.temperature > 0]
        if sampled:
            top_p = torch.tensor([params[b].top_p for b in sampled], device=logits.device)
            filtered = logp[sampled]
            if bool((top_p < 1).any()):
                sorted_lp, order = filtered.sort(dim=-1, descending=True)
                probs = sorted_lp.exp()
                # drop a token when the tokens ranked above it already reach top_p (the first always stays)
                drop_sorted = (probs.cumsum(-1) - probs) >= top_p.clamp(max=1.0)[:, None] - 1e-7
                drop_sorted &= top_p[:, None] < 1
                drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
                filtered = filtered.masked_fill(drop, float("-inf"))
            # exponential race: argmax(p / E), E ~ Exp(1), samples from p (cheaper than multinomial)
            noise = torch.empty(filtered.shape)  # on the CPU, where the generators are
            shared = [k for k, b in enumerate(sampled) if rows[b].generator is None]
            if shared:
                noise[shared] = noise[shared].exponential_(generator=self._rng)
            for k, b in enumerate(sampled):
                if rows[b].generator is not None:
                    noise[k].exponential_(generator=rows[b].generator)
            picks = (filtered.exp() / noise.to(filtered.device)).argmax(-1)
            tokens[sampled] = picks
        chosen = logp.gather(-1, tokens.view(-1, 1)).view(-1).tolist()
        want_top = max(p.top_logprobs for p in params)
        top = logp.topk(want_top, dim=-1) if want_top else None
        for b, row in enumerate(rows):
            row.sample.logprobs.append(float(chosen[b]))
            if top is not None and params[b].top_logprobs:
                k = params[b].top_logprobs
                row.sample.top_logprobs.append(
                    list(zip(top.indices[b, :k].tolist(), (float(v) for v in top.values[b, :k].tolist())))
                )
        return tokens

    def _append(self, row: _Row, token: int, limit: int) -> bool:
        """Add a sampled token; True when the row is finished."""
        sample = row.sample
        sample.token_ids.append(token)
        if row.job.on_token is not None:
            try:
                row.job.on_token(row.index, token)
            except Exception:  # a listener's failure must not fail the batch
                log.exception("token callback failed")
        if token in self.eos_ids and not row.job.params.ignore_eos:
            sample.finish_reason, row.done = "stop", True
        elif len(sample.token_ids) >= limit:
            sample.finish_reason, row.done = "length", True
        text = None
        if row.job.params.stop:
            text = self.tokenizer.decode(sample.token_ids, skip_special_tokens=True)
            hits = [i for i in (text.find(s) for s in row.job.params.stop) if i >= 0]
            if hits:
                text = text[: min(hits)]
                sample.finish_reason, row.done = "stop", True
        if row.done:
            sample.text = text if text is not None else self.tokenizer.decode(sample.token_ids, skip_special_tokens=True)
        return row.done
