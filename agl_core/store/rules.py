"""The store's rules, independent of any backend: every backend calls these instead of deciding itself.

What `LightningStore`'s docstring promises is decided here: which requests are valid, when a
running attempt has timed out, what an ended attempt does to its rollout (succeed, requeue,
fail), which reward span is the latest, and when a late reward settles a final reward. Times are
epoch seconds from the backend's clock (`Clock`), so tests can move time instead of sleeping.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from agl_core.types import RolloutRequest

#: Gives the current time in epoch seconds (``time.time`` unless a test injects a fake one).
Clock = Callable[[], float]


def rollout_requests(items: Sequence[Any]) -> list[RolloutRequest]:
    """`items` as a list, each checked to be a `RolloutRequest` (``TypeError`` otherwise)."""
    requests = list(items)
    for item in requests:
        if not isinstance(item, RolloutRequest):
            raise TypeError(f"enqueue_rollouts takes RolloutRequest items, got {type(item).__name__}: {item!r}")
    return requests
