"""A background heartbeat that keeps a running attempt alive in the store."""

from __future__ import annotations

import logging
import threading

from agl_core.store.base import LightningStore

log = logging.getLogger("agentlightning")


class Heartbeat:
    """``with Heartbeat(store, rollout_id, attempt_id):`` beats every `interval` seconds."""

    def __init__(self, store: LightningStore, rollout_id: str, attempt_id: str, interval: float = 5.0):
        self.store, self.rollout_id, self.attempt_id, self.interval = store, rollout_id, attempt_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"agl-heartbeat-{rollout_id}", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.store.heartbeat(self.rollout_id, self.attempt_id)
            except Exception as exc:  # a missed beat is not fatal; the store decides about timeouts
                log.warning("heartbeat for %s failed: %s", self.rollout_id, exc)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 1)
