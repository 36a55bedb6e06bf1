"""A critic/editor endpoint no call can succeed against stops the run at the first failed call, in one
line naming what to set: unreachable, a refused key, a prompt longer than the model's context."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time

import pytest

from agl_apo import EndpointError, LLMError, TextLLM
from agl_core.cli.config import ConfigError
from agl_core.runtime.agent import Agent
from agl_core.store import LightningStore
from agl_core.training.algorithm import fit
from tests.apo import scripted_rooms
from tests.apo.conftest import make_apo
from tests.apo.test_robustness import MESSAGES, FaultyOpenAI
from tests.fixtures.scripted_openai import free_port

CLI = [sys.executable, "-c", "from agl_core.cli.main import main; main()"]
SETTINGS = "set apo.endpoint and apo.api_key in the config (or OPENAI_BASE_URL and OPENAI_API_KEY)"
SMALL = ["apo.beam_width=1", "apo.branch_factor=1", "apo.beam_rounds=1", "apo.gradient_batch_size=2", "apo.val_batch_size=2"]


def test_cli_stops_at_the_first_call_to_an_unreachable_critic(server, tmp_path):
    critic = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    env = {**os.environ, "AGL_HOME": str(tmp_path / "home"), "OPENAI_API_KEY": "test"}
    env.pop("OPENAI_BASE_URL", None)
    overrides = [f"model.endpoint={server.base_url}", f"apo.endpoint={critic}", "apo.max_retries=4", *SMALL]
    store = f"sqlite:///{tmp_path / 's.db'}"
    started = time.monotonic()
    result = subprocess.run(
        CLI + ["train", "--config", str(scripted_rooms.EXAMPLE_DIR / "config.yaml"), "--store", store]
        + [arg for item in overrides for arg in ("--set", item)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: apo: cannot reach the critic/editor endpoint {critic} (") and last.endswith(SETTINGS)
    assert "Traceback" not in result.stderr and "APIConnectionError" not in result.stderr
    assert result.stdout == ""  # no "finished" summary
    assert time.monotonic() - started < 60  # no retries of a connection that was never made
    assert [run.status for run in LightningStore(store).query_runs()] == ["failed"]


def test_a_refused_key_stops_at_once():
    with FaultyOpenAI([(401, {})] * 5) as server:
        with pytest.raises(EndpointError) as raised:
            TextLLM("scripted", base_url=server.base_url, api_key="wrong", sleep=lambda s: None).complete(MESSAGES)
        assert len(server.chat_requests()) == 1
    assert str(raised.value) == f"apo: the critic/editor endpoint {server.base_url} refused the API key (HTTP 401); {SETTINGS}"


def test_an_endpoint_that_answered_once_is_retried_when_it_goes_away():
    server = FaultyOpenAI([])
    with server:
        llm = TextLLM("scripted", base_url=server.base_url, api_key="t", max_retries=2, sleep=lambda s: None)
        assert llm.complete(MESSAGES).startswith("<prompt>")
    with pytest.raises(LLMError, match="gave up after 3 tries: APIConnectionError"):  # a blip costs one candidate
        llm.complete(MESSAGES)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="serve needs the trainer (torch)")
def test_a_critic_prompt_longer_than_the_served_models_context_stops_the_run(server, store, tmp_path):
    from agl_trl.serve.app import ModelServer
    from tests.trainers import serve_model

    model, tokenizer = serve_model.build(steps=1)  # a 256-token context: the critic's prompt does not fit
    with ModelServer(model, tokenizer, model_name="policy", store=store) as critic:
        critic_url = critic.base_url
        apo = make_apo(server, tmp_path, beam_rounds=1, val_batch_size=4, gradient_batch_size=2)
        apo.llm = TextLLM("policy", base_url=critic.base_url, api_key="t", sleep=lambda s: None)
        with pytest.raises(ConfigError) as raised:
            fit(apo, Agent("room_selector"), store, scripted_rooms.load_tasks("train"), scripted_rooms.load_tasks("val"), n_workers=2)
    message = str(raised.value)
    assert message.startswith(f"apo: the critic/editor prompt does not fit 'policy' at {critic_url}: the prompt has ")
    assert message.endswith(" tokens; the model's context is 256; use a model with a longer context (apo.model, apo.endpoint)")
    assert [run.status for run in store.query_runs()] == ["failed"]
