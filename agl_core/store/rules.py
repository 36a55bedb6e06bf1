"""The store's rules, independent of any backend: every backend calls these instead of deciding itself.

What `LightningStore`'s docstring promises is decided here: which requests and reports are
valid, when a running attempt has timed out, what an ended attempt does to its rollout (succeed,
requeue, fail), which reward span is the latest, and when a late reward settles a final reward.
Times are epoch seconds from the backend's clock (`Clock`), so tests move time instead of sleeping.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

from agl_core.tracing import semconv
from agl_core.types import TERMINAL_ROLLOUT_STATUSES, RolloutRequest, Span, check_reward

#: Gives the current time in epoch seconds (``time.time`` unless a test injects a fake one).
Clock = Callable[[], float]

#: The statuses `update_attempt` accepts besides None (a heartbeat, like ``running``).
REPORTED_STATUSES: tuple[str, ...] = ("running", "succeeded", "failed", "timeout")
TIMEOUT_ERROR = "timed out (no heartbeat or over timeout_s)"
CANCELLED_ERROR = "cancelled"
#: Longest pause between the sweeps that claims run by themselves (shorter for short heartbeat timeouts).
SWEEP_INTERVAL_S = 1.0


def rollout_requests(items: Sequence[Any]) -> list[RolloutRequest]:
    """`items` as a list, each checked to be a `RolloutRequest` (``TypeError`` otherwise)."""
    requests = list(items)
    for item in requests:
        if not isinstance(item, RolloutRequest):
            raise TypeError(f"enqueue_rollouts takes RolloutRequest items, got {type(item).__name__}: {item!r}")
    return requests


def check_report(status: str | None, reward: Any) -> float | None:
    """Validate an `update_attempt` report; returns its reward (None when none was reported).

    Raises ``ValueError`` for an unknown status or a reward `check_reward` refuses.
    """
    if status is not None and status not in REPORTED_STATUSES:
        raise ValueError(f"unknown attempt status {status!r}; use one of {', '.join(REPORTED_STATUSES)}")
    return None if reward is None else check_reward(reward)


def is_heartbeat(status: str | None) -> bool:
    """A report without a final status only says the worker is alive."""
    return status in (None, "running")


def timed_out(
    start_time: float, last_heartbeat: float | None, timeout_s: float | None, heartbeat_timeout: float, now: float
) -> bool:
    """Whether a running attempt has timed out: silent for longer than `heartbeat_timeout` (since
    its start when it never beat), or running for longer than its rollout's `timeout_s`."""
    last_sign = start_time if last_heartbeat is None else last_heartbeat
    return now - last_sign > heartbeat_timeout or (timeout_s is not None and now - start_time > timeout_s)


def sweep_due(now: float, last_sweep: float, heartbeat_timeout: float) -> bool:
    """Whether a claim should sweep first (so a dead worker's rollout is found without a sweeper)."""
    return now - last_sweep >= min(SWEEP_INTERVAL_S, heartbeat_timeout / 4)


def settled_status(rollout_status: str, num_attempts: int, max_attempts: int, attempt_status: str) -> str | None:
    """The rollout's status after one of its attempts ended with `attempt_status`.

    None when the rollout is already terminal (cancelled, say): a late report changes nothing.
    A failure or timeout requeues the rollout while it has attempts left, else fails it.
    """
    if rollout_status in TERMINAL_ROLLOUT_STATUSES:
        return None
    if attempt_status == "succeeded":
        return "succeeded"
    return "requeuing" if num_attempts < max_attempts else "failed"


def latest_reward(spans: Iterable[Span]) -> float | None:
    """The value of the latest ``agl.reward`` span: latest end (start when it has none), then the
    last stored. Spans whose value is not a valid reward (`check_reward`) are skipped."""
    best: tuple[tuple[float, int], float] | None = None
    for span in spans:
        if span.name != semconv.SPAN_REWARD:
            continue
        try:
            value = check_reward(span.attributes.get(semconv.AGL_REWARD_VALUE))
        except ValueError:
            continue
        key = (span.start_time if span.end_time is None else span.end_time, span.sequence_id)
        if best is None or key >= best[0]:
            best = (key, value)
    return None if best is None else best[1]


def final_reward(reported: float | None, attempt_spans: Iterable[Span]) -> float | None:
    """A succeeded attempt's final reward: the reported one, else its latest reward span's."""
    return reported if reported is not None else latest_reward(attempt_spans)


def settles_late(rollout_status: str, final_reward: float | None) -> bool:
    """Whether a reward span arriving now settles the rollout's final reward (from the spans of
    its succeeded attempt): it succeeded without one."""
    return rollout_status == "succeeded" and final_reward is None
