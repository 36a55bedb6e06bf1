"""The trainer's sampling, imposed on every request of the rollouts it runs, and its policy served with it.

**Sampling belongs to the trainer, not to the agent.** An unchanged agent sends whatever
temperature it likes (or none); the importance ratios of the loss need the distribution the tokens
were really drawn from, and resume-equality needs reproducible draws. So `SamplingHook` rewrites
every request of a rollout the trainer enqueued: temperature and top_p from the rollout's
`LLMEndpoint.sampling_parameters`, ``max_tokens`` capped there, and a seed derived from
``(run seed, step, task id, repeat, call index)`` — independent of which worker ran the rollout
or in which order, so a resumed run draws exactly what an uninterrupted one did.

The trainer's `ModelServer` (`serving`) runs in the trainer's process on the very model object
being optimised, so a new policy needs no reload — only a version bump.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from typing import Any, Iterator

from agl_core.store.base import LightningStore
from agl_core.types import LLMEndpoint

from .seeds import derive_seed


class SamplingHook:
    """`ModelServer.request_hook` imposing each trainer rollout's sampling (see the module docstring).

    Requests of rollouts whose endpoint resource has no ``seed`` in its sampling parameters (not the
    trainer's) pass unchanged. Without a store (``agent-lightning eval``, where the rollouts live in
    the caller's store), `fixed` sampling parameters apply to every rollout, seeded by its id.
    """

    def __init__(self, store: LightningStore | None, fixed: dict[str, Any] | None = None) -> None:
        self.store = store
        self.fixed = fixed
        self._lock = threading.Lock()
        self._rollouts: dict[str, tuple[dict[str, Any], str, int] | None] = {}
        self._calls: dict[tuple[str, str | None], int] = {}

    def _info(self, rollout_id: str) -> tuple[dict[str, Any], str, int] | None:
        with self._lock:
            if rollout_id in self._rollouts:
                return self._rollouts[rollout_id]
        info = None
        if self.store is None:
            return (self.fixed, rollout_id, 0) if self.fixed is not None else None
        rollout = self.store.get_rollout(rollout_id)
        update = self.store.get_resources(rollout.resources_id) if rollout and rollout.resources_id else None
        llm = next((r for r in (update.resources.values() if update else ()) if isinstance(r, LLMEndpoint)), None)
        if rollout is not None and llm is not None and "seed" in llm.sampling_parameters:
            info = (llm.sampling_parameters, rollout.task_id or "", int(rollout.metadata.get("repeat", 0)))
        with self._lock:
            self._rollouts[rollout_id] = info
        return info

    def __call__(self, req: Any, rollout_id: str | None, attempt_id: str | None) -> Any:
        info = self._info(rollout_id) if rollout_id else None
        if info is None or rollout_id is None:
            return req
        params, task_id, repeat = info
        with self._lock:
            call = self._calls.get((rollout_id, attempt_id), 0)
            self._calls[(rollout_id, attempt_id)] = call + 1
        cap = int(params.get("max_tokens") or 0) or None
        wanted = req.max_tokens if req.max_tokens is not None else cap
        return dataclasses.replace(
            req,
            temperature=float(params.get("temperature", req.temperature)),
            top_p=float(params.get("top_p", req.top_p)),
            max_tokens=min(wanted, cap) if wanted is not None and cap is not None else wanted,
            seed=derive_seed(params["seed"], task_id, repeat, call),
        )


@contextlib.contextmanager
def serving(
    model: Any,
    tokenizer: Any,
    store: LightningStore | None,
    *,
    model_name: str = "policy",
    version: int = 0,
    fixed: dict[str, Any] | None = None,
) -> Iterator[Any]:
    """A started `ModelServer` on `model` with a `SamplingHook(store, fixed)` installed."""
    from .serve.app import ModelServer

    server = ModelServer(model, tokenizer, model_name=model_name, store=store, policy_version=version)
    server.request_hook = SamplingHook(store, fixed)
    with server:
        yield server


def endpoint_with(server: Any, *, temperature: float, top_p: float, max_tokens: int, seed: int) -> LLMEndpoint:
    endpoint = server.endpoint(rollout_scoped=True)
    endpoint.sampling_parameters = {"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens, "seed": seed}
    return endpoint
