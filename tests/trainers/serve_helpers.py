"""Helpers of the `serve` tests: an openai client without retries, the spans `serve` recorded, streams."""

from __future__ import annotations

import openai

from agl_core.runtime.telemetry import flush
from agl_core.store import LightningStore
from agl_core.tracing import semconv


def client_for(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="test", max_retries=0)


def server_spans(store: LightningStore, rollout_id: str | None = None) -> list:
    flush()
    spans = store.query_spans(rollout_id) if rollout_id else store.query_spans()
    return [s for s in spans if s.attributes.get(semconv.GEN_AI_PROVIDER_NAME) == "agentlightning"]


def stream(client: openai.OpenAI, **kwargs) -> list:
    return list(client.chat.completions.create(model="policy", stream=True, **kwargs))


def streamed_texts(chunks: list) -> dict[int, str]:
    texts: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
    return texts
