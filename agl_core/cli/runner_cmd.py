"""``agent-lightning runner``: a long-lived worker that claims rollouts from a shared store.

It wraps `agl_core.runtime.runner.Runner`: the workers claim rollouts, run the agent with
heartbeats and report each outcome. The process keeps polling until stopped. SIGTERM (or Ctrl-C)
stops the claiming and lets the rollouts in hand finish and report, for at most ``--grace``
seconds; a second signal, or the grace running out, exits at once, and the store times those
attempts out after its heartbeat timeout and requeues them while they have attempts left.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import NoReturn

import click

#: The statuses of a rollout someone still has to finish (``--exit-when-idle`` waits for none).
UNFINISHED = ("queuing", "requeuing", "running")


def load_agent(agent_spec: str | None, config_path: str | None) -> tuple[object, str | None]:
    """The agent to run (``module:function``, else the config's ``agent:`` section) and the
    config's store URL (None without a config). Raises `ConfigError` for a bad spec or config."""
    from agl_core.cli.config import ConfigError, load_config
    from agl_core.cli.launch import build_agent, import_object
    from agl_core.runtime.runner import as_agent

    config = load_config(config_path) if config_path else None
    if agent_spec:
        fn = import_object(agent_spec, os.getcwd())  # the current directory, then PYTHONPATH
        if not callable(fn):
            raise ConfigError(f"--agent {agent_spec}: {fn!r} is not callable as agent(task, resources)")
        return as_agent(fn), config.store if config else None
    if config is None:
        raise ConfigError("name the agent: --agent MODULE:FUNCTION or --config FILE")
    return build_agent(config), config.store


def _stop_on_signals(stopping: threading.Event) -> None:
    """First SIGTERM/SIGINT: stop claiming and finish what is in hand. Second: exit now."""

    def handle(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            raise SystemExit(128 + signum)
        stopping.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def serve_runner(
    agent: object,
    store_url: str,
    *,
    workers: int,
    processes: bool,
    heartbeat_interval: float,
    exit_when_idle: float | None,
    grace: float,
) -> None:
    """Run `agent` over `store_url`'s rollouts until a signal (or `exit_when_idle` idle seconds)."""
    from agl_core.runtime.runner import Runner

    runner = Runner(agent, store_url, n_workers=workers, processes=processes, heartbeat_interval=heartbeat_interval)
    runner.store.count_rollouts("running")  # an unreachable store fails here (StoreError), not in the workers
    stopping = threading.Event()
    _stop_on_signals(stopping)
    kind = "processes" if processes else "threads"
    print(
        f"runner {os.getpid()}: agent {runner.agent.name!r}, {workers} worker {kind}, store {runner.store.url}; "
        "SIGTERM finishes the rollouts in hand, then exits",
        flush=True,
    )
    runner.start()
    idle_since: float | None = None
    while not stopping.wait(0.5):
        if exit_when_idle is None:
            continue
        if runner.store.count_rollouts(UNFINISHED):
            idle_since = None
        elif idle_since is None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= exit_when_idle:
            break
    runner.stop(timeout=grace)
    done = "" if processes else f" after {runner.completed} rollout(s)"
    print(f"runner {os.getpid()}: stopped{done}", flush=True)


@click.command()
@click.option(
    "--store",
    default=None,
    help="The store to claim from: http(s)://HOST:PORT (a collector), postgresql://… or sqlite:///PATH (default: the config's store).",
)
@click.option(
    "--agent",
    "agent_spec",
    default=None,
    metavar="MODULE:FUNCTION",
    help="def agent(task, resources) -> float | None, imported from the current directory or PYTHONPATH.",
)
@click.option(
    "--config",
    "config_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Run the config's agent: section (openai, python, command) instead of --agent.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Rollouts run at once, on threads of this process.",
)
@click.option(
    "--processes",
    default=None,
    type=click.IntRange(min=1),
    help="Rollouts run at once, each worker a process of its own (instead of --workers threads).",
)
@click.option(
    "--heartbeat-interval",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0.01),
    help="Seconds between heartbeats; keep well under the store's heartbeat timeout.",
)
@click.option(
    "--exit-when-idle",
    default=None,
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Exit once the store has had no queued or running rollout for this long (scripts, tests).",
)
@click.option(
    "--grace",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="On SIGTERM: seconds the rollouts in hand have to finish before the runner exits anyway.",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging on the console.")
def runner(
    store: str | None,
    agent_spec: str | None,
    config_path: str | None,
    workers: int,
    processes: int | None,
    heartbeat_interval: float,
    exit_when_idle: float | None,
    grace: float,
    verbose: bool,
) -> None:
    """Claim rollouts from a store and run the agent on them until stopped.

    Start as many as you like, on any machine that reaches the store. SIGTERM finishes: no new
    rollout is claimed, the rollouts in hand finish and report (at most --grace seconds), then the
    runner exits 0. A runner that dies holding rollouts (kill -9, a lost machine) stops its
    heartbeats; the store times those attempts out after its heartbeat timeout
    (`collector --heartbeat-timeout`) and requeues them while they have attempts left
    (enqueue_rollout(..., max_attempts=N); timeout_s=S bounds one rollout's run).
    """
    from agl_core.cli.config import ConfigError
    from agl_core.cli.logs import setup_logging
    from agl_core.store.base import StoreError

    setup_logging(verbose)
    if processes is not None and workers != 1:
        _fail("--workers (threads) and --processes are alternatives; give one")
    try:
        agent, config_store = load_agent(agent_spec, config_path)
    except ConfigError as exc:
        _fail(str(exc))
    store_url = store or config_store
    if not store_url:
        _fail("--store URL is required (the collector's http://HOST:PORT, or a PostgreSQL URL)")
    if store_url.startswith("memory:"):
        _fail("--store memory:// lives in this process only; give a store the trainer can reach")
    try:
        serve_runner(
            agent,
            store_url,
            workers=processes or workers,
            processes=processes is not None,
            heartbeat_interval=heartbeat_interval,
            exit_when_idle=exit_when_idle,
            grace=grace,
        )
    except (StoreError, ValueError) as exc:  # unreachable, or a URL no backend serves
        _fail(str(exc))


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)
