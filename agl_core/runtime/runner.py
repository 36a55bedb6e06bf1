"""Runner: executes a user's agent over rollouts taken from the store.

The agent is ``def agent(task, resources) -> float | None`` (sync or async). It runs inside the
rollout context (so every span it makes is stamped with the rollout ids), with heartbeats; an
exception fails the attempt (and is recorded as an ``agl.exception`` span, so the store may retry
it); the return value, else the last ``emit_reward``, is the final reward.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from agl_core.runtime.attempt import attempt_lifecycle
from agl_core.runtime.telemetry import configure
from agl_core.store.base import LightningStore, StoreUnavailable
from agl_core.tracing.autoinstrument import ensure_instrumented
from agl_core.tracing.emit import emit_exception
from agl_core.types import AttemptedRollout, Resource, check_reward

log = logging.getLogger("agentlightning")

AgentFn = Callable[[Any, dict[str, Resource]], Any]
#: Longest pause between a worker's retries while the store is unavailable.
MAX_OUTAGE_WAIT_S = 5.0


@dataclass
class RolloutAgent:
    """An agent function with the name its root span and selective optimization use."""

    fn: AgentFn
    name: str

    def __call__(self, task: Any, resources: dict[str, Resource]) -> Any:
        return self.fn(task, resources)


def rollout(fn: AgentFn | None = None, *, name: str | None = None) -> Any:
    """Mark a function as an agent the runner can train: ``@agl.rollout`` or ``@agl.rollout(name=...)``."""

    def wrap(f: AgentFn) -> RolloutAgent:
        return RolloutAgent(fn=f, name=name or f.__name__)

    return wrap(fn) if fn is not None else wrap


def as_agent(agent: Any) -> RolloutAgent:
    if isinstance(agent, RolloutAgent):
        return agent
    if callable(agent):
        return RolloutAgent(fn=agent, name=str(getattr(agent, "name", None) or getattr(agent, "__name__", "agent")))
    raise TypeError(f"an agent must be callable as agent(task, resources), got {agent!r}")


class Runner:
    """Runs `agent` over queued rollouts with `n_workers` threads (or processes, for isolation)."""

    def __init__(
        self,
        agent: Any,
        store: LightningStore | str | None = None,
        *,
        n_workers: int = 1,
        processes: bool = False,
        heartbeat_interval: float = 5.0,
        poll_interval: float = 0.05,
    ) -> None:
        self.agent = as_agent(agent)
        self.store = store if isinstance(store, LightningStore) else LightningStore(store)
        self.n_workers = n_workers
        self.processes = processes
        self.heartbeat_interval = heartbeat_interval
        self.poll_interval = poll_interval
        self._stop = threading.Event()
        self._threads: list[Any] = []
        self.completed = 0
        self._count_lock = threading.Lock()

    # --- one rollout ---------------------------------------------------------------------------
    def run_one(self, attempted: AttemptedRollout) -> None:
        """Run the agent on one claimed rollout and report the attempt's outcome to the store."""
        store = self.store
        resources_update = (
            store.get_resources(attempted.resources_id) if attempted.resources_id else store.get_latest_resources()
        )
        resources = dict(resources_update.resources) if resources_update else {}
        try:
            with attempt_lifecycle(
                store,
                attempted.rollout_id,
                attempted.attempt.attempt_id,
                agent=self.agent.name,
                resources_id=resources_update.resources_id if resources_update else None,
                resources=resources,
                mode=attempted.mode,
                heartbeat_interval=self.heartbeat_interval,
            ) as attempt:
                try:
                    result = self.agent(attempted.input, resources)
                    if inspect.isawaitable(result):
                        result = asyncio.run(_await(result))
                    attempt.reward = None if result is None else check_reward(result)
                except Exception as exc:
                    emit_exception(exc)  # in the rollout, so the store (and its retry policy) sees it
                    raise
        except Exception as exc:
            log.warning("rollout %s failed: %s: %s", attempted.rollout_id, type(exc).__name__, exc)
        with self._count_lock:
            self.completed += 1

    # --- worker loops --------------------------------------------------------------------------
    def _worker(self, worker_id: str, max_rollouts: int | None, stop_when_idle: bool) -> None:
        """Claim and run rollouts until stopped. While the store is unavailable (a restarting
        server or database, a full disk) the worker waits and retries, backing off to
        `MAX_OUTAGE_WAIT_S`; a rollout it had claimed then times out and is requeued by the store."""
        done, outage = 0, 0.0
        while not self._stop.is_set() and (max_rollouts is None or done < max_rollouts):
            try:
                attempted = self.store.dequeue_rollout(worker_id)
                if attempted is not None:
                    self.run_one(attempted)
                    done += 1
            except StoreUnavailable as exc:
                if not outage:
                    log.warning("runner %s: store unavailable, retrying: %s", worker_id, exc)
                outage = min(MAX_OUTAGE_WAIT_S, outage * 2 or self.poll_interval * 4)
                self._stop.wait(outage)
                continue
            if outage:
                log.warning("runner %s: store reachable again", worker_id)
                outage = 0.0
            if attempted is None:
                if stop_when_idle:
                    return
                self._stop.wait(self.poll_interval)

    def start(self, *, stop_when_idle: bool = False) -> "Runner":
        """Start the workers in the background; `stop()` ends them."""
        configure()
        ensure_instrumented()
        self._stop.clear()
        if self.processes:
            if self.store.url.startswith("memory:"):
                raise ValueError("process workers need a store other processes can reach (sqlite file, postgres, http)")
            ctx = multiprocessing.get_context("spawn")
            self._stop = ctx.Event()  # type: ignore[assignment]
            self._threads = [
                ctx.Process(
                    target=_process_worker,
                    args=(
                        self.agent,
                        self.store.url,
                        f"proc-{os.getpid()}-{i}",
                        stop_when_idle,
                        self.heartbeat_interval,
                        self._stop,
                    ),
                    daemon=True,
                )
                for i in range(self.n_workers)
            ]
        else:
            self._threads = [
                threading.Thread(
                    target=self._worker,
                    args=(f"thread-{os.getpid()}-{i}", None, stop_when_idle),
                    name=f"agl-runner-{i}",
                    daemon=True,
                )
                for i in range(self.n_workers)
            ]
        for worker in self._threads:
            worker.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout
        for worker in self._threads:
            worker.join(max(0.0, deadline - time.monotonic()))
            if isinstance(worker, multiprocessing.process.BaseProcess) and worker.is_alive():
                worker.terminate()
        self._threads = []

    def run(self, *, max_rollouts: int | None = None) -> int:
        """Process queued rollouts until the queue is empty (or `max_rollouts`); returns how many."""
        configure()
        ensure_instrumented()
        if self.processes:
            self.start(stop_when_idle=True)
            for worker in self._threads:
                worker.join()
            return self.store.count_rollouts(("succeeded", "failed"))
        before = self.completed
        if self.n_workers == 1:
            self._worker(f"thread-{os.getpid()}-0", max_rollouts, stop_when_idle=True)
        else:
            self.start(stop_when_idle=True)
            for worker in self._threads:
                worker.join()
        return self.completed - before

    def __enter__(self) -> "Runner":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _process_worker(
    agent: RolloutAgent,
    store_url: str,
    worker_id: str,
    stop_when_idle: bool,
    heartbeat_interval: float,
    stop: Any,
) -> None:
    # Ctrl-C reaches the whole process group; the parent decides what it means (it sets `stop`), so
    # a rollout in hand finishes instead of failing with KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    store = LightningStore(store_url)
    configure(store)
    ensure_instrumented()
    runner = Runner(agent, store, heartbeat_interval=heartbeat_interval)
    runner._stop = stop
    runner._worker(worker_id, None, stop_when_idle)
