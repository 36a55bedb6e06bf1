"""The ``agent-lightning serve`` command; torch and transformers load only when it runs."""

from __future__ import annotations

import logging
import signal
import sys
import threading

import click


@click.command("serve")
@click.option("--model", "model_path", default=None, help="Model folder, cached hub name, or 'tiny' (the built-in model); not with --proxy.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; beyond loopback needs --api-key.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on (0: a free one).")
@click.option("--store", default=None, help="Store URL the spans go to (default: AGL_STORAGE or the embedded SQLite).")
@click.option("--proxy", default=None, help="Forward to this OpenAI-compatible base URL (e.g. vLLM's …/v1) instead.")
@click.option("--proxy-api-key", default=None, envvar="AGL_PROXY_API_KEY", help="API key for the --proxy upstream.")
@click.option("--model-name", default=None, help="Name in /v1/models (default: --model, or 'policy').")
@click.option("--max-batch-size", default=64, show_default=True, type=int, help="Sequences generated together.")
@click.option("--poll-s", default=2.0, show_default=True, type=float, help="Store polling for new checkpoints; 0 disables.")
@click.option("--device", default=None, help="torch device (default: cuda when available, else cpu).")
@click.option(
    "--api-key", default=None, envvar="AGL_SERVE_API_KEY", help="Clients must send it as their API key; required beyond loopback. Env: AGL_SERVE_API_KEY."
)
@click.option("-v", "--verbose", is_flag=True, help="Log every request.")
def serve(
    model_path: str | None,
    host: str,
    port: int,
    store: str | None,
    proxy: str | None,
    proxy_api_key: str | None,
    model_name: str | None,
    max_batch_size: int,
    poll_s: float,
    device: str | None,
    api_key: str | None,
    verbose: bool,
) -> None:
    """Serve a model as an OpenAI-compatible endpoint that records token ids and logprobs.

    Each call becomes a `chat` span in the store, joined to the caller's trace; a new
    ModelCheckpoint published in the store is loaded between requests.
    """
    if (model_path is None) == (proxy is None):
        raise click.UsageError("give exactly one of --model and --proxy")
    from agl_core.cli.config import ConfigError, check_model_path
    from agl_core.cli.logs import setup_logging
    from agl_core.runtime.telemetry import default_store
    from agl_core.server.access import AccessError, check_bind
    from agl_core.store.base import LightningStore
    from agl_trl.loading import load_model, resolve_model_path
    from agl_trl.serve.app import API_KEY_ENV, ModelServer
    from agl_trl.serve.watch import watch_checkpoints

    try:
        check_bind(host, api_key, service="the model", token_env=API_KEY_ENV, flag="--api-key")  # before loading anything
        if model_path is not None:
            check_model_path(model_path, "--model")
    except (AccessError, ConfigError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    setup_logging(verbose)
    span_store = LightningStore(store) if store else default_store()
    model = tokenizer = None
    weights = None
    if model_path is not None:
        weights = resolve_model_path(model_path)
        model, tokenizer = load_model(weights, device)
    server = ModelServer(
        model,
        tokenizer,
        model_name=model_name or model_path or "policy",
        store=span_store,
        host=host,
        port=port,
        max_batch_size=max_batch_size,
        proxy=proxy,
        proxy_api_key=proxy_api_key,
        api_key=api_key,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with server:
        if verbose:  # uvicorn set its access log to warnings when the server started
            logging.getLogger("uvicorn.access").setLevel(logging.INFO)
        if poll_s > 0:
            args = (server, span_store, poll_s, done)
            threading.Thread(target=watch_checkpoints, args=args, name="agl-serve-watch", daemon=True).start()
        source = f"proxy to {proxy}" if proxy else model_path if weights == model_path else f"{model_path} ({weights})"
        key = f"API key required ({API_KEY_ENV})" if api_key else "no API key"
        click.echo(f"serving {source} at {server.base_url} ({key}; spans to {span_store!r})")
        try:
            done.wait()
        except KeyboardInterrupt:
            done.set()
