"""A standalone ``serve`` follows a training run: each new checkpoint published to the store is loaded."""

from __future__ import annotations

import logging
import threading

from agl_core.store.base import LightningStore

from ..loading import load_model
from .app import ModelServer

log = logging.getLogger("agentlightning.serve")


def watch_checkpoints(server: ModelServer, store: LightningStore, poll_s: float, stop: threading.Event) -> None:
    """Poll the store's latest resources; on a new ``ModelCheckpoint`` load it and bump the version.

    The version is the published ``LLMEndpoint.policy_version`` when there is one, else the
    checkpoint's step, else the current version + 1. A proxy only tracks the version (the
    upstream loads its own weights).
    """
    seen: str | None = None
    loaded: tuple[str, int | None] | None = None
    while not stop.wait(poll_s):
        try:
            latest = store.get_latest_resources()
            if latest is None or latest.resources_id == seen:
                continue
            seen = latest.resources_id
            resources = list(latest.resources.values())
            checkpoint = next((r for r in resources if r.resource_type == "checkpoint"), None)
            if checkpoint is None or (checkpoint.path, checkpoint.step) == loaded:
                continue
            endpoint = next((r for r in resources if r.resource_type == "llm" and r.policy_version is not None), None)
            version = endpoint.policy_version if endpoint is not None else checkpoint.step
            if version is None:
                version = (server.policy_version or 0) + 1
            model = None
            if server.engine is not None:
                device = str(next(server.engine.model.parameters()).device)
                model, _ = load_model(checkpoint.path, device)
            server.set_policy(model, version=version)
            loaded = (checkpoint.path, checkpoint.step)
            log.info("serving %s as policy version %s", checkpoint.path, version)
        except Exception:
            log.exception("could not load the latest checkpoint")
