"""The generation engine's continuous batching: a request that arrives while a batch runs joins it
at the next token and is answered when its own rows finish, with the tokens it would get alone;
`paused` lets no newcomer in and waits for the running batch."""

from __future__ import annotations

import threading

import pytest
import torch

from agl_trl.serve.batch import SamplingParams
from agl_trl.serve.engine import BatchedGenerator
from tests.trainers import serve_model
from tests.trainers.serve_model import GREETING, QUESTION, TOOLS


@pytest.fixture(scope="module")
def tiny():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield serve_model.build()
    torch.set_num_threads(threads)


@pytest.fixture()
def engine(tiny):
    model, tokenizer = tiny
    engine = BatchedGenerator(model, tokenizer, max_batch_size=8)
    engine.start()
    yield engine
    engine.stop()


def prompt(tokenizer, messages, tools=None) -> list[int]:
    return tokenizer.apply_chat_template(messages, tools=tools, add_generation_prompt=True, return_dict=False)


class Steps:
    """Counts forward passes (and the rows in each) through a forward pre-hook. The third pass
    sets `started`, then waits (up to 10 s) for `go`: whatever the test submits meanwhile is
    queued while the batch runs, however slow the machine."""

    def __init__(self, model) -> None:
        self.sizes: list[int] = []
        self.started, self.go = threading.Event(), threading.Event()
        self._hook = model.register_forward_pre_hook(self._seen, with_kwargs=True)

    def _seen(self, _module, _args, kwargs) -> None:
        self.sizes.append(int(kwargs["input_ids"].shape[0]))
        if len(self.sizes) == 3:
            self.started.set()
            self.go.wait(10)

    def remove(self) -> None:
        self._hook.remove()


def test_a_request_joins_the_running_batch_and_is_answered_first(engine, tiny):
    model, tokenizer = tiny
    long_params = SamplingParams(max_tokens=120, temperature=1.0, seed=5, ignore_eos=True)
    short_params = SamplingParams(max_tokens=6, temperature=0.0)
    short_prompt, long_prompt = prompt(tokenizer, QUESTION, TOOLS), prompt(tokenizer, GREETING)
    alone_long = engine.submit(long_prompt, long_params).result()[0]
    alone_short = engine.submit(short_prompt, short_params).result()[0]

    steps = Steps(model)
    try:
        running = engine.submit(long_prompt, long_params)
        assert steps.started.wait(10)  # the long batch is generating
        short = engine.submit(short_prompt, short_params)
        steps.go.set()
        joined_short = short.result(timeout=30)[0]
        assert not running.done()  # answered while the long row still generates
        joined_long = running.result(timeout=60)[0]
    finally:
        steps.remove()
    # one prefill each, and the short row's tokens came out of the long row's forward passes
    assert steps.sizes.count(2) >= len(joined_short.token_ids) - 1
    assert len(steps.sizes) == 2 + (len(joined_long.token_ids) - 1)
    # padding the joined cache changes nothing a user can see
    assert joined_short.token_ids == alone_short.token_ids and joined_long.token_ids == alone_long.token_ids
    assert joined_short.logprobs == pytest.approx(alone_short.logprobs, abs=1e-4)
    assert joined_long.logprobs == pytest.approx(alone_long.logprobs, abs=1e-4)


def test_requests_join_up_to_max_batch_size(engine, tiny):
    model, tokenizer = tiny
    params = SamplingParams(max_tokens=60, temperature=1.0, seed=1, ignore_eos=True)
    ids = prompt(tokenizer, GREETING)
    steps = Steps(model)
    try:
        first = engine.submit(ids, params, n=6)
        assert steps.started.wait(10)
        later = [engine.submit(ids, params, n=2) for _ in range(3)]  # room for one of them
        steps.go.set()
        results = [f.result(timeout=60) for f in [first, *later]]
    finally:
        steps.remove()
    assert max(steps.sizes) == 8 and all(len(r) == n for r, n in zip(results, (6, 2, 2, 2)))
    # same seed and choice index -> same tokens, whichever batch a request ran in
    assert all(r[0].token_ids == results[0][0].token_ids for r in results)


def test_paused_admits_no_newcomer_and_waits_for_the_batch(engine, tiny):
    model, tokenizer = tiny
    ids = prompt(tokenizer, GREETING)
    params = SamplingParams(max_tokens=40, temperature=1.0, ignore_eos=True)
    stop = threading.Event()

    def keep_asking() -> None:  # a steady stream of requests that could keep one batch alive forever
        while not stop.is_set():
            engine.submit(ids, params).result(timeout=60)

    askers = [threading.Thread(target=keep_asking) for _ in range(3)]
    for t in askers:
        t.start()
    try:
        for _ in range(3):
            with engine.paused():
                steps = Steps(model)
                try:
                    threading.Event().wait(0.2)
                finally:
                    steps.remove()
                assert steps.sizes == []  # nothing generates while paused
    finally:
        stop.set()
        for t in askers:
            t.join(60)
    assert not any(t.is_alive() for t in askers)


def test_a_request_that_does_not_fit_is_not_overtaken(tiny):
    model, tokenizer = tiny
    engine = BatchedGenerator(model, tokenizer, max_batch_size=4)
    engine.start()
    ids = prompt(tokenizer, GREETING)
    params = SamplingParams(max_tokens=30, temperature=1.0, seed=2, ignore_eos=True)
    steps = Steps(model)
    try:
        running = engine.submit(ids, params, n=3)
        assert steps.started.wait(10)
        bigger = engine.submit(ids, params, n=2)  # no room beside the running three
        smaller = engine.submit(ids, params, n=1)  # would fit, but must not pass the older request
        steps.go.set()
        [f.result(timeout=60) for f in (running, bigger, smaller)]
    finally:
        steps.remove()
        engine.stop()
    # three rows, then the two waiting requests together (three rows again): 30 forwards each
    assert steps.sizes == [3] * 60


def test_newcomers_that_finish_on_their_first_token_leave_the_batch_running(engine, tiny):
    model, tokenizer = tiny
    ids = prompt(tokenizer, GREETING)
    long_params = SamplingParams(max_tokens=60, temperature=1.0, seed=3, ignore_eos=True)
    alone = engine.submit(ids, long_params).result()[0]
    steps = Steps(model)
    try:
        running = engine.submit(ids, long_params)
        assert steps.started.wait(10)
        one_token = [engine.submit(ids, SamplingParams(max_tokens=1, temperature=0.0)) for _ in range(2)]
        steps.go.set()
        assert [len(f.result(timeout=30)[0].token_ids) for f in one_token] == [1, 1]
        assert running.result(timeout=60)[0].token_ids == alone.token_ids  # the running row went on undisturbed
    finally:
        steps.remove()
    assert steps.sizes.count(2) == 1  # the newcomers' one prefill, and they left at once


@pytest.mark.parametrize("max_batch_size", [4, 64])
def test_whatever_joins_when_each_request_gets_what_it_gets_alone(tiny, max_batch_size):
    """60 requests of every shape (prompt length, n, max_tokens from 1, greedy/sampled, top_p, stop,
    ignore_eos, streamed or not) arriving at random moments: the same tokens, finish and text as each
    one run alone, and a streamed one is told exactly its tokens."""
    import concurrent.futures
    import random
    import time

    model, tokenizer = tiny
    rng = random.Random(max_batch_size)

    def request() -> tuple[list[int], SamplingParams, int]:
        params = SamplingParams(
            max_tokens=rng.choice([1, 2, 3, 8, 20, 50]), temperature=rng.choice([0.0, 1.0, 1.3]), seed=rng.randrange(1000),
            top_p=rng.choice([1.0, 0.9]), stop=tuple(rng.sample(["e", "lo"], rng.randint(0, 1))), ignore_eos=rng.random() < 0.5,
        )  # fmt: skip
        return [rng.randrange(3, len(tokenizer)) for _ in range(rng.randint(1, 40))], params, rng.choice([1, 1, 2, 3])

    requests = [request() for _ in range(60)]
    delays = [rng.random() * 0.05 for _ in requests]
    one_at_a_time = BatchedGenerator(model, tokenizer)
    one_at_a_time.start()
    alone = [one_at_a_time.submit(*r).result(timeout=60) for r in requests]
    one_at_a_time.stop()

    engine = BatchedGenerator(model, tokenizer, max_batch_size=max_batch_size)
    engine.start()

    streamed: dict[int, dict[int, list[int]]] = {i: {} for i in range(0, len(requests), 3)}

    def fire(i: int) -> list:
        time.sleep(delays[i])
        told = streamed.get(i)
        on_token = (lambda choice, token: told.setdefault(choice, []).append(token)) if told is not None else None
        return engine.submit(*requests[i], on_token=on_token).result(timeout=60)

    try:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            together = list(pool.map(fire, range(len(requests))))
    finally:
        engine.stop()
    for want, got in zip(alone, together):
        assert [(s.token_ids, s.finish_reason, s.text) for s in got] == [(s.token_ids, s.finish_reason, s.text) for s in want]
        assert all(g.logprobs == pytest.approx(w.logprobs, abs=1e-3) for g, w in zip(got, want))
    for i, told in streamed.items():
        assert told == {k: s.token_ids for k, s in enumerate(together[i])}
