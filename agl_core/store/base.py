"""`LightningStore`: one interface for rollouts, attempts, resources, spans, runs and metrics.

``LightningStore(url)`` picks the backend by URL scheme: ``sqlite:///path`` (default
``$AGL_HOME/store.db``), ``memory://``, ``postgresql://…`` and ``http(s)://host:port`` (a client
of ``agent-lightning collector``). Plugins may add schemes through ``agl_store_backends``.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from agl_core.paths import default_store_url
from agl_core.store.methods import async_twin, marked_methods, store_method
from agl_core.store.registry import backend_for_url
from agl_core.types import (
    Attempt,
    AttemptedRollout,
    MetricRecord,
    Resource,
    ResourcesUpdate,
    Rollout,
    RolloutRequest,
    Run,
    Span,
)

DEFAULT_HEARTBEAT_TIMEOUT_S = 60.0


class StoreError(RuntimeError):
    """A store operation that cannot be done (unknown rollout, attempt not running, …)."""


class StoreUnavailable(StoreError):
    """The store cannot do it now (disk full, database unreachable) but may later: nothing of the
    call was stored, and the same call can be retried (servers answer 503)."""


class LightningStore:
    """The store contract every backend keeps (`agl_core.store.rules` holds its rules in code).

    Rollout statuses: ``queuing`` (enqueued) → ``running`` (a worker claimed it and holds an
    attempt) → ``succeeded`` | ``failed`` | ``cancelled`` (terminal: a rollout never leaves them).
    A running rollout whose attempt failed or timed out goes to ``requeuing`` while it has
    attempts left (``num_attempts < max_attempts``), else to ``failed``; queuing and requeuing
    rollouts are claimed oldest first (`dequeue_rollout`), each claim opening attempt
    ``num_attempts + 1``.

    Attempt statuses: ``running`` → ``succeeded`` | ``failed`` | ``timeout``. A running attempt
    times out when it sent no heartbeat (`heartbeat`, or `update_attempt` without a final status)
    for the backend's heartbeat timeout (default `DEFAULT_HEARTBEAT_TIMEOUT_S`), counted from its
    start when it never beat, or when it has run for longer than its rollout's ``timeout_s``.
    `sweep` finds such attempts; `dequeue_rollout` and `wait_for_rollouts` sweep too, so a store
    nobody sweeps by hand still recovers from a worker that died.

    Rewards: an attempt that succeeds settles its rollout's ``final_reward``: the reported reward,
    else the latest reward span of that attempt (`rules.latest_reward`), else None. A reward span
    stored after that (late: exporters batch) still settles a ``final_reward`` that is None. A
    reward is a finite int or float (`agl_core.types.check_reward`). A report for an attempt that
    no longer runs (timed out, cancelled) changes nothing: the rollout may already be running
    again.

    Every method marked `store_method` is served by the store server and has an async twin
    ``a<method>`` that runs it in a worker thread.
    """

    url: str

    def __new__(cls, url: str | None = None, **kwargs: Any) -> "LightningStore":
        if cls is not LightningStore:
            return super().__new__(cls)
        backend = backend_for_url(url or default_store_url())
        return super().__new__(backend)

    # --- rollouts ----------------------------------------------------------------------------
    @store_method
    def enqueue_rollout(
        self,
        input: Any,
        mode: str = "train",
        *,
        task_id: str | None = None,
        resources_id: str | None = None,
        run_id: str | None = None,
        max_attempts: int = 1,
        timeout_s: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Rollout:
        """Enqueue one rollout (``queuing``); the arguments are `RolloutRequest`'s fields.

        Raises:
            ValueError: a field is invalid (``max_attempts < 1``, ``timeout_s <= 0``).
        """
        request = RolloutRequest(
            input=input,
            mode=mode,
            task_id=task_id,
            resources_id=resources_id,
            run_id=run_id,
            max_attempts=max_attempts,
            timeout_s=timeout_s,
            metadata=metadata or {},
        )
        return self.enqueue_rollouts([request])[0]

    @store_method
    def enqueue_rollouts(self, items: Sequence[RolloutRequest]) -> list[Rollout]:
        """Enqueue many rollouts in one transaction, claimed later in the order given.

        Returns:
            The new rollouts (``queuing``), in the order of `items`.
        Raises:
            TypeError: an item is not a `RolloutRequest`.
        """
        raise NotImplementedError

    @store_method
    def start_rollout(
        self,
        input: Any,
        mode: str = "train",
        *,
        worker_id: str | None = None,
        task_id: str | None = None,
        resources_id: str | None = None,
        run_id: str | None = None,
        max_attempts: int = 1,
        timeout_s: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> AttemptedRollout:
        """Create a rollout already ``running`` with its first attempt (agents traced outside a
        runner); the arguments are `RolloutRequest`'s fields and the attempt's `worker_id`."""
        raise NotImplementedError

    @store_method
    def dequeue_rollout(self, worker_id: str | None = None) -> AttemptedRollout | None:
        """Atomically claim the oldest queuing or requeuing rollout and open a new attempt on it.

        Returns:
            The rollout, now ``running``, with its attempt; None when nothing waits. Two callers
            never get the same attempt, even from different processes.
        """
        raise NotImplementedError

    @store_method
    def update_attempt(
        self,
        rollout_id: str,
        attempt_id: str,
        status: str | None = None,
        *,
        reward: float | None = None,
        error: str | None = None,
    ) -> Attempt:
        """Report on a running attempt: None or ``running`` is a heartbeat; ``succeeded``,
        ``failed`` or ``timeout`` ends it and settles its rollout (see the class docstring).

        Returns:
            The attempt as stored now (unchanged when it no longer ran).
        Raises:
            StoreError: no such attempt of that rollout.
            ValueError: an unknown status, or a reward that is not a finite number.
        """
        raise NotImplementedError

    @store_method
    def heartbeat(self, rollout_id: str, attempt_id: str) -> None:
        """Tell the store the attempt's worker is alive. Raises `StoreError` for an unknown attempt."""
        self.update_attempt(rollout_id, attempt_id, "running")

    @store_method
    def sweep(self) -> int:
        """Time out the running attempts whose heartbeat stopped or whose ``timeout_s`` ran out,
        settling their rollouts. Returns how many attempts timed out."""
        raise NotImplementedError

    @store_method
    def cancel_rollout(self, rollout_id: str) -> Rollout:
        """Cancel a rollout that is not terminal; its running attempt fails (error ``cancelled``).

        Returns:
            The rollout as stored now (a terminal one is returned unchanged).
        Raises:
            StoreError: no such rollout.
        """
        raise NotImplementedError

    @store_method
    def get_rollout(self, rollout_id: str) -> Rollout | None:
        """The rollout, or None when there is none with that id."""
        raise NotImplementedError

    @store_method
    def query_rollouts(
        self,
        status: str | Iterable[str] | None = None,
        mode: str | None = None,
        *,
        run_id: str | None = None,
        rollout_ids: Sequence[str] | None = None,
        agent: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = False,
    ) -> list[Rollout]:
        """Rollouts matching every filter given, oldest first (`newest_first` reverses).

        `status` is one status or several; `agent` keeps rollouts whose ``metadata["agent"]``
        equals it; `limit` and `offset` page through the result.
        """
        raise NotImplementedError

    @store_method
    def count_rollouts(
        self,
        status: str | Iterable[str] | None = None,
        mode: str | None = None,
        *,
        run_id: str | None = None,
        agent: str | None = None,
    ) -> int:
        """How many rollouts `query_rollouts` would return with the same filters."""
        raise NotImplementedError

    @store_method
    def query_attempts(self, rollout_id: str) -> list[Attempt]:
        """The rollout's attempts, first to last ([] for an unknown rollout)."""
        raise NotImplementedError

    @store_method
    def wait_for_rollouts(
        self, rollout_ids: Sequence[str], timeout: float | None = None, poll_s: float = 0.05
    ) -> list[Rollout]:
        """Block until every rollout is terminal, or `timeout` seconds passed (sweeping meanwhile).

        Returns:
            The terminal ones among `rollout_ids`, in that order.
        """
        raise NotImplementedError

    # --- resources ---------------------------------------------------------------------------
    @store_method
    def add_resources(self, resources: dict[str, Resource], metadata: dict[str, Any] | None = None) -> ResourcesUpdate:
        """Store a new version of the named resources; versions count 1, 2, … and the newest is
        the latest. Returns the new version."""
        raise NotImplementedError

    @store_method
    def annotate_resources(self, resources_id: str, metadata: dict[str, Any]) -> ResourcesUpdate:
        """Merge `metadata` into a version's metadata (a score found later, say); the resources
        themselves never change. Raises ``ValueError`` for an unknown version."""
        raise NotImplementedError

    @store_method
    def get_latest_resources(self) -> ResourcesUpdate | None:
        """The newest version, or None before the first `add_resources`."""
        raise NotImplementedError

    @store_method
    def get_resources(self, resources_id: str) -> ResourcesUpdate | None:
        """That version, or None when there is none with that id."""
        raise NotImplementedError

    @store_method
    def query_resources(self, limit: int | None = None, offset: int = 0) -> list[ResourcesUpdate]:
        """All versions, newest first, paged by `limit` and `offset`."""
        raise NotImplementedError

    # --- spans -------------------------------------------------------------------------------
    @store_method
    def add_spans(self, spans: Sequence[Span]) -> int:
        """Store spans (their ``sequence_id`` is assigned here, increasing in arrival order); a
        late reward span settles its rollout's final reward (class docstring). Returns how many."""
        raise NotImplementedError

    @store_method
    def query_spans(
        self,
        rollout_id: str | None = None,
        attempt_id: str | None = None,
        *,
        trace_id: str | None = None,
        unassigned: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Span]:
        """Spans matching every filter given, in arrival order; `unassigned` keeps those of no rollout."""
        raise NotImplementedError

    @store_method
    def count_spans(self, rollout_id: str | None = None) -> int:
        """How many spans (of that rollout) are stored."""
        raise NotImplementedError

    # --- runs and metrics ----------------------------------------------------------------------
    @store_method
    def upsert_run(self, run: Run) -> Run:
        """Create or replace a run; an update keeps its ``created_at``. Returns the run as stored."""
        raise NotImplementedError

    @store_method
    def get_run(self, run_id: str) -> Run | None:
        """The run, or None when there is none with that id."""
        raise NotImplementedError

    @store_method
    def query_runs(self, limit: int | None = None, offset: int = 0) -> list[Run]:
        """All runs, newest first, paged by `limit` and `offset`."""
        raise NotImplementedError

    @store_method
    def add_metrics(self, run_id: str, step: int, metrics: dict[str, float | None]) -> MetricRecord:
        """Record a run's metrics at `step` (several records per step are kept). Returns the record."""
        raise NotImplementedError

    @store_method
    def query_metrics(self, run_id: str) -> list[MetricRecord]:
        """The run's metric records by step, then in recording order."""
        raise NotImplementedError

    # --- async twins (see `agl_core.store.methods`) --------------------------------------------
    aenqueue_rollout = async_twin(enqueue_rollout)
    aenqueue_rollouts = async_twin(enqueue_rollouts)
    astart_rollout = async_twin(start_rollout)
    adequeue_rollout = async_twin(dequeue_rollout)
    aupdate_attempt = async_twin(update_attempt)
    aheartbeat = async_twin(heartbeat)
    asweep = async_twin(sweep)
    acancel_rollout = async_twin(cancel_rollout)
    aget_rollout = async_twin(get_rollout)
    aquery_rollouts = async_twin(query_rollouts)
    acount_rollouts = async_twin(count_rollouts)
    aquery_attempts = async_twin(query_attempts)
    await_for_rollouts = async_twin(wait_for_rollouts)
    aadd_resources = async_twin(add_resources)
    aannotate_resources = async_twin(annotate_resources)
    aget_latest_resources = async_twin(get_latest_resources)
    aget_resources = async_twin(get_resources)
    aquery_resources = async_twin(query_resources)
    aadd_spans = async_twin(add_spans)
    aquery_spans = async_twin(query_spans)
    acount_spans = async_twin(count_spans)
    aupsert_run = async_twin(upsert_run)
    aget_run = async_twin(get_run)
    aquery_runs = async_twin(query_runs)
    aadd_metrics = async_twin(add_metrics)
    aquery_metrics = async_twin(query_metrics)

    def close(self) -> None:
        """Release connections; the store is not used afterwards."""

    def __enter__(self) -> "LightningStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


def store_methods() -> tuple[str, ...]:
    """The store API: the names of `LightningStore`'s `store_method`\\ s, in declaration order."""
    return marked_methods(LightningStore)
