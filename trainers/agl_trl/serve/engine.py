"""Batched sampling on a transformers causal LM: the generation engine behind ``serve``.

An idle engine starts a batch as soon as a request arrives, with every request already queued
(up to ``max_batch_size`` sequences; ``batch_window_s`` > 0 waits for a quiet gap that long, at
most ``max_wait_s``): one left-padded prefill, then one forward pass per token over the whole
batch, with a KV cache. The batch is continuous: a row
leaves it as soon as it finishes (its request is answered then, not when the batch ends), and
requests that arrive meanwhile are prefilled together and join it, while there is room
(``max_batch_size``): once they are a quarter as many as the running rows, or have waited
``max_wait_s`` (a prefill pass costs about as much as a decoding step). Our own loop, rather than ``model.generate``, because rows of one batch
differ in temperature, top_p, seed, stop strings and length, and because we need each sampled
token's log-probability.

Joining needs a cache whose layers are all plain `DynamicLayer`s (full attention, as in Llama,
Qwen2, GPT-2); with any other layer type (sliding windows, linear attention) new requests wait for
the running batch to finish.

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

import collections
import concurrent.futures
import contextlib
import logging
import os
import queue
import threading
import time
from typing import Any, Iterator, Sequence

import torch

from .batch import (
    Job,
    KVBatch,
    Row,
    SamplingParams,
    TokenCallback,
    cache_kwarg,
    eos_ids,
    joinable,
)

log = logging.getLogger("agentlightning.serve")

#: Default cap on the sequences generated together (a request with ``n`` choices counts ``n``).
DEFAULT_MAX_BATCH_SIZE = 64
#: An idle engine waits this long for more requests before it starts a batch: none, since later
#: requests join the running batch (waiting cost a lone request 5 ms on the tiny model) ...
DEFAULT_BATCH_WINDOW_S = 0.0
#: ... and newcomers wait at most this long to join a running batch (see `_worth_a_prefill`).
DEFAULT_MAX_WAIT_S = 0.05


class BatchedGenerator:
    """``submit(prompt_ids, params, n)`` from any thread; one worker thread owns the model.

    ``lock`` is held while a batch runs; `paused` stops new requests from joining the running
    batch, waits for it to finish and holds the lock: no generation runs inside it (use it around
    an optimizer step on the same weights).
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
        self._pausing = 0  # `paused` blocks waiting: admit no new request, start no new batch
        self._pausing_changed = threading.Condition()
        #: policy version stamped on every sample; change it under `lock` together with the weights.
        self.version: int | None = None
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._rng = torch.Generator().manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._waiting_since: float | None = None  # when the running batch first saw a queued request
        #: a request taken from the queue that did not fit the running batch: it starts the next one
        self._held: collections.deque[Job] = collections.deque()
        self.set_model(model)

    # --- model --------------------------------------------------------------------------------
    def set_model(self, model: Any) -> None:
        with self.lock:
            self.model = model
            self._cache_kwarg = cache_kwarg(model)
            self.eos_ids = eos_ids(model, self.tokenizer)
            pad = self.tokenizer.pad_token_id
            self.pad_id = pad if pad is not None else min(self.eos_ids, default=0)

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_input_embeddings().num_embeddings)

    @property
    def context_length(self) -> int:
        config = getattr(self.model, "config", None)
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return int(getattr(self.tokenizer, "model_max_length", 2048) or 2048)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No generation runs inside this block; the running batch finishes first, without newcomers."""
        with self._pausing_changed:
            self._pausing += 1
        try:
            with self.lock:
                yield
        finally:
            with self._pausing_changed:
                self._pausing -= 1
                self._pausing_changed.notify_all()

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
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
        job = Job(list(prompt_ids), params, n, on_token)
        self._queue.put(job)
        return job.future

    def _worker(self) -> None:
        while not self._stopping:
            job = self._held.popleft() if self._held else self._queue.get()
            if job is None:
                return
            jobs, rows = [job], job.n
            first = time.monotonic()
            deadline = first + self.batch_window_s
            while rows < self.max_batch_size:
                try:
                    nxt = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is None:
                    self._stopping = True
                    break
                jobs.append(nxt)
                rows += nxt.n
                # requests still streaming in: wait for a quiet gap, but never past max_wait_s
                deadline = min(time.monotonic() + self.batch_window_s, first + self.max_wait_s)
            with self._pausing_changed:  # the lock is not fair: let a waiting `paused` have it first
                self._pausing_changed.wait_for(lambda: not self._pausing)
            self._run(jobs, admit=not self._stopping)

    def _worth_a_prefill(self, running: int) -> bool:
        """Whether the queued requests should join now: each join costs a prefill pass, so they wait
        until they are a quarter as many as the running rows, or for at most ``max_wait_s``."""
        waiting = self._queue.qsize() + len(self._held)
        if not waiting:
            self._waiting_since = None
            return False
        now = time.monotonic()
        if self._waiting_since is None:
            self._waiting_since = now
        if waiting >= max(1, running // 4) or now - self._waiting_since >= self.max_wait_s:
            self._waiting_since = None
            return True
        return False

    def _newcomers(self, room: int) -> list[Job]:
        """Queued requests that fit in `room` more rows (a request with ``n`` choices counts ``n``)."""
        jobs: list[Job] = []
        while not self._stopping and not self._pausing:
            if self._held:  # the oldest request goes first
                job: Job | None = self._held.popleft()
            else:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
            if job is None:
                self._stopping = True
            elif job.n > room and (jobs or room < self.max_batch_size):
                self._held.appendleft(job)  # no room now: it joins when there is, or starts the next batch
                break
            else:
                jobs.append(job)
                room -= job.n
        return jobs

    def _run(self, jobs: list[Job], admit: bool) -> None:
        try:
            with self.lock:
                self._generate(jobs, admit)
        except Exception as exc:  # a failed batch fails its requests, never the worker
            log.error("generation failed for %d request(s)", sum(not job.future.done() for job in jobs), exc_info=exc)
            for job in jobs:  # `_generate` appends the requests that joined
                if not job.future.done():
                    job.future.set_exception(exc)

    # --- generation ---------------------------------------------------------------------------
    def _rows(self, jobs: list[Job]) -> list[Row]:
        rows = []
        for job in jobs:
            for i in range(job.n):
                seed = job.params.seed
                gen = torch.Generator().manual_seed((seed * 1_000_003 + i) % (2**63)) if seed is not None else None
                rows.append(Row(job, i, gen))
                job.samples.append(rows[-1].sample)
        return rows

    @torch.inference_mode()
    def _generate(self, jobs: list[Job], admit: bool) -> None:
        model = self.model
        was_training = model.training
        model.eval()  # the trainer may have left it in train mode (dropout)
        try:
            self._decode_loop(model, jobs, admit)
        finally:
            model.train(was_training)

    def _decode_loop(self, model: Any, jobs: list[Job], admit: bool) -> None:
        device = next(model.parameters()).device
        kwargs: dict[str, Any] = {"use_cache": True, "logits_to_keep": 1}
        pending = {id(job): job.n for job in jobs}  # rows still generating, per request
        batch = self._prefill(model, self._rows(jobs), device, kwargs, pending)
        while batch is not None:
            batch.attention = torch.cat([batch.attention, batch.attention.new_ones((len(batch.rows), 1))], dim=-1)
            logits = model(
                input_ids=batch.tokens.view(-1, 1).to(device),
                attention_mask=batch.attention,
                position_ids=batch.next_pos.view(-1, 1),
                **{self._cache_kwarg: batch.cache},
                **kwargs,
            ).logits[:, -1]
            batch.next_pos = batch.next_pos + 1
            batch.tokens = self._sample(logits.float(), batch.rows)
            batch.keep(self._unfinished(batch, pending))
            room = self.max_batch_size - len(batch.rows)
            joins = admit and room > 0 and joinable(batch.cache) and self._worth_a_prefill(len(batch.rows))
            newcomers = self._newcomers(room) if joins else []
            joining = None
            if newcomers:
                jobs += newcomers
                pending.update((id(job), job.n) for job in newcomers)
                joining = self._prefill(model, self._rows(newcomers), device, kwargs, pending)
            if not batch.rows:
                batch = joining
            elif joining is not None:
                batch.join(joining)

    def _prefill(self, model: Any, rows: list[Row], device: Any, kwargs: dict[str, Any], pending: dict[int, int]) -> KVBatch | None:
        """Run `rows`' prompts, sample their first tokens; the batch of those not finished yet."""
        width = max(len(r.job.prompt_ids) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids = row.job.prompt_ids
            input_ids[i, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention[i, width - len(ids) :] = 1
        input_ids, attention = input_ids.to(device), attention.to(device)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        from transformers import DynamicCache

        cache = DynamicCache(config=model.config) if hasattr(model, "config") else DynamicCache()
        logits = model(
            input_ids=input_ids, attention_mask=attention, position_ids=positions, **{self._cache_kwarg: cache}, **kwargs
        ).logits[:, -1]
        batch = KVBatch(rows, cache, attention, attention.sum(-1), self._sample(logits.float(), rows))
        batch.keep(self._unfinished(batch, pending))
        return batch if batch.rows else None

    def _unfinished(self, batch: KVBatch, pending: dict[int, int]) -> list[int]:
        """Record each row's new token; answer the requests whose rows are all done; the rest's positions."""
        kept = []
        for b, (row, token) in enumerate(zip(batch.rows, batch.tokens.tolist())):  # one device sync per step
            limit = min(row.job.params.max_tokens, self.context_length - len(row.job.prompt_ids))
            if not self._append(row, token, limit):
                kept.append(b)
                continue
            row.sample.policy_version = self.version
            pending[id(row.job)] -= 1
            if pending[id(row.job)] == 0:
                row.job.future.set_result(row.job.samples)
        return kept

    def _sample(self, logits: torch.Tensor, rows: list[Row]) -> torch.Tensor:
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

    def _append(self, row: Row, token: int, limit: int) -> bool:
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
