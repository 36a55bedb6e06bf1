"""The policy a trainer owns: loading it, serving it with the trainer's sampling, scoring it on held-out tasks.

Shared by the RL and SFT algorithms. The trainer's `ModelServer` runs in the trainer's process
on the very model object being optimised, so a new policy needs no reload — only a version bump.

**Sampling belongs to the trainer, not to the agent.** An unchanged agent sends whatever
temperature it likes (or none); the importance ratios of the loss need the distribution the tokens
were really drawn from, and resume-equality needs reproducible draws. So `SamplingHook` rewrites
every request of a rollout the trainer enqueued: temperature and top_p from the rollout's
`LLMEndpoint.sampling_parameters`, ``max_tokens`` capped there, and a seed derived from
``(run seed, step, task id, repeat, call index)`` — independent of which worker ran the rollout
or in which order, so a resumed run draws exactly what an uninterrupted one did.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import threading
from pathlib import Path
from typing import Any, Iterator, Sequence

from agl_core.store.base import LightningStore
from agl_core.training.algorithm import Algorithm
from agl_core.types import LLMEndpoint, Rollout, Task

from .checkpoints import latest_checkpoint, load_state

log = logging.getLogger("agentlightning")

#: `ModelConfig.path` / `RLConfig.model` values that mean the tiny model built on this machine.
TINY_NAMES = ("", "tiny")
#: A rollout counts as solved (accuracy) when its reward reaches this.
SOLVED = 0.5


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from any values, stable across processes (unlike ``hash``)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def resolve_model_path(name: str) -> str:
    """``""``/``tiny`` → the tiny model (built once, cached); anything else as given."""
    if name in TINY_NAMES:
        from agl_trl.tiny_model import build_tiny_model

        return str(build_tiny_model())
    return name


def load_policy(name: str, *, lora: bool = False, lora_rank: int = 16, adapter: str | None = None) -> tuple[Any, Any]:
    """The model to train (float32 on CPU, bfloat16 on CUDA) and its tokenizer.

    `adapter`: a LoRA checkpoint folder to continue from; `lora` wraps a fresh adapter otherwise.
    """
    from .loading import load_model

    model, tokenizer = load_model(resolve_model_path(name))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter, is_trainable=True)
    elif lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model, LoraConfig(r=lora_rank, lora_alpha=2 * lora_rank, target_modules="all-linear", task_type="CAUSAL_LM")
        )
    return model, tokenizer


def policy_to_train(cfg: Any, output_dir: Path, resume: bool) -> tuple[Any, Any, dict[str, Any] | None, Path | None]:
    """What a run trains: ``(model, tokenizer, trainer_state, checkpoint)``.

    Resuming, that is the latest checkpoint under `output_dir` (a LoRA adapter on ``cfg.model``, or
    full weights) with its saved trainer state; otherwise ``cfg.model`` (with a fresh adapter when
    ``cfg.lora``) and no state.
    """
    latest = latest_checkpoint(output_dir) if resume else None
    if latest is None:
        return *load_policy(cfg.model, lora=cfg.lora, lora_rank=cfg.lora_rank), None, None
    if (latest / "adapter_config.json").exists():
        model, tokenizer = load_policy(cfg.model, adapter=str(latest))
    else:
        model, tokenizer = load_policy(str(latest))
    return model, tokenizer, load_state(latest), latest


def load_checkpoint_model(path: str | Path) -> tuple[Any, Any]:
    """A saved checkpoint (full weights, or a LoRA adapter on its base) ready to serve."""
    from .loading import load_model

    path = Path(path)
    if (path / "adapter_config.json").exists():
        from peft import AutoPeftModelForCausalLM
        from transformers import AutoTokenizer

        model = AutoPeftModelForCausalLM.from_pretrained(str(path)).merge_and_unload()
        return model.eval(), AutoTokenizer.from_pretrained(str(path))
    return load_model(str(path))


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
        if llm is not None and "seed" in llm.sampling_parameters:
            info = (llm.sampling_parameters, rollout.task_id or "", int(rollout.metadata.get("repeat", 0)))
        with self._lock:
            self._rollouts[rollout_id] = info
        return info

    def __call__(self, req: Any, rollout_id: str | None, attempt_id: str | None) -> Any:
        info = self._info(rollout_id) if rollout_id else None
        if info is None:
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


def accuracy(rollouts: Sequence[Rollout], n_tasks: int) -> tuple[float, float]:
    """(mean reward, fraction solved) over `n_tasks`; lost or failed rollouts count as 0."""
    rewards = [r.final_reward or 0.0 for r in rollouts if r.status == "succeeded"]
    if not n_tasks:
        return 0.0, 0.0
    return sum(rewards) / n_tasks, sum(r >= SOLVED for r in rewards) / n_tasks


def evaluate(
    store: LightningStore,
    server: Any,
    tasks: Sequence[Task],
    *,
    temperature: float,
    top_p: float,
    max_tokens: int,
    seed: int,
    run_id: str | None,
    timeout: float,
    label: str,
) -> dict[str, float]:
    """Held-out accuracy sampled at the training `temperature` and greedy (temperature 0)."""
    out: dict[str, float] = {}
    for mode, temp in (("sampled", temperature), ("greedy", 0.0)):
        endpoint = endpoint_with(server, temperature=temp, top_p=top_p, max_tokens=max_tokens, seed=derive_seed(seed, label, mode))
        resources_id = store.add_resources({"llm": endpoint}, metadata={"run_id": run_id, "eval": label}).resources_id
        rollouts = Algorithm.run_rollouts(
            store, tasks, resources_id=resources_id, mode="val", run_id=run_id, timeout=timeout, metadata={"eval": label}
        )
        reward, solved = accuracy(rollouts, len(tasks))
        out[f"heldout_reward_{mode}"] = reward
        out[f"heldout_accuracy_{mode}"] = solved
    out["heldout_reward"] = out["heldout_reward_sampled"]
    return out


def evaluate_heldout(cfg: Any, store: LightningStore, server: Any, tasks: Sequence[Task], run_id: str | None, label: str) -> dict[str, float]:
    """`evaluate` with a run config's sampling settings (``temperature``, ``top_p``,
    ``max_new_tokens``, ``seed``, ``rollout_timeout_s``): the same measure for every trainer."""
    return evaluate(
        store, server, tasks, temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_new_tokens,
        seed=derive_seed(cfg.seed, "heldout"), run_id=run_id, timeout=cfg.rollout_timeout_s, label=label,
    )  # fmt: skip
