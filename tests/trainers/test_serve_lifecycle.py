"""`serve`'s lifecycle and access: binding on start, API keys, the CLI."""

from __future__ import annotations

import socket

import httpx
import openai
import pytest
from click.testing import CliRunner

from agl_trl.serve.app import ModelServer
from tests.trainers.serve_helpers import client_for, server_spans
from tests.trainers.serve_model import (
    GREETING,
    GREETING_REPLY,
)


def test_cli_help():
    from agl_core.cli.main import main

    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0 and "--proxy" in result.output and "--model" in result.output
    assert CliRunner().invoke(main, ["serve"]).exit_code != 0


def test_api_key_is_required_of_every_client_when_given(tiny, store, monkeypatch):
    model, tokenizer = tiny
    with ModelServer(model, tokenizer, store=store, api_key="k3y") as server:
        with pytest.raises(openai.AuthenticationError, match="AGL_SERVE_API_KEY"):
            client_for(server.base_url).chat.completions.create(model="policy", messages=GREETING, temperature=0)
        assert httpx.get(f"http://{server.host}:{server.port}/health").status_code == 200
        endpoint = server.endpoint(rollout_scoped=False)  # what a trainer hands its agents
        client = openai.OpenAI(base_url=endpoint.endpoint, api_key=endpoint.api_key, max_retries=0)
        reply = client.chat.completions.create(model="policy", messages=GREETING, temperature=0)
    assert reply.choices[0].message.content == GREETING_REPLY
    assert len(server_spans(store)) == 1  # the refused request made no span

    with pytest.raises(RuntimeError, match="refusing to serve the model on 0.0.0.0"):
        ModelServer(model, tokenizer, store=store, host="0.0.0.0")
    from agl_core.cli.main import main

    monkeypatch.delenv("AGL_SERVE_API_KEY", raising=False)
    refused = CliRunner().invoke(main, ["serve", "--model", "/nonexistent", "--host", "0.0.0.0"])
    assert refused.exit_code != 0 and "AGL_SERVE_API_KEY" in refused.output  # refused before loading the model


def test_a_server_binds_its_port_when_started_not_when_built(tiny, store):
    model, tokenizer = tiny
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ModelServer(model, tokenizer, store=store, port=port)
    with pytest.raises(RuntimeError, match="before it starts"):
        _ = server.base_url
    with socket.socket() as squatter:  # the port is still free: building bound nothing
        squatter.bind(("127.0.0.1", port))
    with server:
        assert server.base_url == f"http://127.0.0.1:{port}/v1"
        reply = client_for(server.base_url).chat.completions.create(model="policy", messages=GREETING, temperature=0)
        with pytest.raises(RuntimeError, match="already running"):
            server.start()
    assert reply.choices[0].message.content == GREETING_REPLY
    with socket.socket() as again:  # stopped: nobody listens there any more (closed connections may linger)
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
