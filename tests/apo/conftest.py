"""Fixtures: a memory store wired to the tracer, the scripted room world, an APO factory."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

import agentlightning as agl
from agl_apo import APO, APOConfig, TextLLM
from agl_core.types import LLMEndpoint
from tests.apo import scripted_rooms
from tests.fixtures.scripted_openai import ScriptedOpenAI

#: Small enough to be quick, big enough that the seed (0.25 here) can climb to 1.0 in three rounds.
FAST = dict(beam_width=2, branch_factor=3, beam_rounds=3, gradient_batch_size=8, val_batch_size=16, rollout_budget=400)


@pytest.fixture()
def store(tmp_path, monkeypatch) -> agl.LightningStore:
    monkeypatch.setenv("AGL_HOME", str(tmp_path / "home"))
    store = agl.LightningStore("memory://")
    agl.configure(store=store)
    return store


@pytest.fixture()
def server() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI(scripted_rooms.responder) as server:
        yield server


def make_apo(server: ScriptedOpenAI, tmp_path: Any, prompts: dict[str, str] | None = None, **settings: Any) -> APO:
    config = APOConfig(**{**FAST, **settings})
    llm = TextLLM("scripted", base_url=server.base_url, api_key="test", max_retries=1, sleep=lambda s: None)
    return APO(
        config,
        prompts=prompts or {"room_selector": scripted_rooms.SEED_PROMPT},
        optimize=None if prompts is None else ["selector"],
        resources={"llm": LLMEndpoint(endpoint=server.base_url, model="scripted", api_key="test")},
        output_dir=tmp_path / "out",
        llm=llm,
    )
