"""``agent-lightning``: train, eval, export, serve, dashboard, collector, runner, plugins."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from agl_core import __version__
from agl_core.cli.runner_cmd import runner as runner_command

VERBOSE_HELP = "Debug logging on the console (the log file is $AGL_HOME/logs/training.log)."
STORE_HELP = "Store URL: sqlite:///PATH, postgresql://…, memory:// or http://HOST:4318 (default: the config's store, AGL_STORAGE, or $AGL_HOME/store.db)."


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


SET_HELP = (
    "Override a config key, e.g. --set training.episodes=2 --set environment.eval_size=4 (repeatable; "
    "KEY is dotted, VALUE is YAML: 2, 1e-4, [math, coding], null)."
)


def _prepare(config_path: str, overrides: tuple[str, ...], store: str | None, verbose: bool) -> tuple[Any, Any]:
    from agl_core.cli.config import ConfigError, load_config
    from agl_core.cli.logs import setup_logging
    from agl_core.store import LightningStore

    setup_logging(verbose)
    try:
        config = load_config(config_path, overrides)
    except ConfigError as exc:
        _fail(str(exc))
    return config, LightningStore(store or config.store)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="agent-lightning")
def main() -> None:
    """Agent Lightning: train any AI agent from its traces.

    \b
    Environment:
      AGL_HOME             runs, logs and the default store (default ~/.agent-lightning)
      AGL_STORAGE          the default store URL, or object storage for run folders (s3://bucket/prefix)
      AGL_STORE_TOKEN      collector: the token clients send (required beyond loopback)
      AGL_DASHBOARD_TOKEN  dashboard: the token browsers send (required beyond loopback)
      AGL_SERVE_API_KEY    serve: the API key clients send (required beyond loopback)
    """


def _model_line(config: Any) -> str:
    """The model a config uses, resolved: an endpoint's, the agent's API model, or the weights' folder."""
    from agl_core.cli.config import TINY_MODEL_NAMES

    model = config.model
    if model.endpoint:
        return f"{model.name or model.path} at {model.endpoint}"
    if model.name and "path" not in model.model_fields_set:  # an API model (APO's agent), not weights
        return f"{model.name} at {os.environ.get('OPENAI_BASE_URL') or 'https://api.openai.com/v1'}"
    if model.path in TINY_MODEL_NAMES:
        return "tiny (the built-in model: built once on this machine, then cached)"
    folder = os.path.abspath(os.path.expanduser(model.path))
    return folder if os.path.isdir(folder) else f"{model.path} (hub model, from the local cache)"


def _output_dir(config: Any) -> str:
    from agl_core.paths import default_run_dir

    out = config.training.output_dir
    return str(config.resolve_path(out) if out else default_run_dir(config.agent.name, config.training.algorithm))


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="The config.yaml to train from.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--store", default=None, help=STORE_HELP)
@click.option("--resume", is_flag=True, help="Continue from the latest checkpoint in the output directory.")
@click.option("--dry-run", is_flag=True, help="Validate the config, resolve agent, model and task sets, print the plan, exit.")
@click.option("-v", "--verbose", is_flag=True, help=VERBOSE_HELP)
def train(config_path: str, overrides: tuple[str, ...], store: str | None, resume: bool, dry_run: bool, verbose: bool) -> None:
    """Train the agent described by a config file.

    The config's sections (agent, model, training, environment, store) and keys are documented in
    README.md, "Train > From a config file"; an algorithm's training keys are the fields of its
    config class (grpo/rloo: agl.RLConfig, sft: agl.SFTConfig), and a wrong key's error lists the
    valid ones. `agent-lightning plugins` lists the algorithms and task sets installed. --set changes
    a key for this run only, e.g. a smoke test: --set training.episodes=2 --set environment.eval_size=4.
    """
    from agl_core.cli.config import ConfigError
    from agl_core.cli.launch import build_agent, build_algorithm, build_tasks, check_runners
    from agl_core.training.algorithm import fit
    from agl_core.training.registry import TrainingOptions
    from agl_core.training.run_mirror import StorageError, check_storage

    config, lstore = _prepare(config_path, overrides, store, verbose)
    try:
        check_runners(config, lstore.url)
        agent = build_agent(config)
        train_tasks = build_tasks(config, "train")
        eval_tasks = build_tasks(config, "eval")
        if not train_tasks:
            raise ConfigError("environment.train_tasks: no training tasks (name a task set or a JSONL file)")
        algorithm = build_algorithm(config, resume=resume)  # the algorithm's own checks, dry run included
        if dry_run:
            training = config.training  # the common keys and the options the config sets
            shown = training.model_dump(include=set(TrainingOptions.model_fields) | training.model_fields_set)
            shown.pop("output_dir", None)
            click.echo(f"agent:      {agent.name} ({config.agent.type}); optimize: {config.agent.optimize or 'all agents'}")
            click.echo(f"model:      {_model_line(config)}")
            click.echo(f"algorithm:  {training.algorithm} {shown}")
            click.echo(f"output_dir: {_output_dir(config)}")
            click.echo(f"tasks:      {len(train_tasks)} train, {len(eval_tasks)} eval")
            click.echo(f"store:      {lstore.url}")
            click.echo("dry run: config is valid; nothing was trained")
            return
        check_storage()  # AGL_STORAGE=s3://…: a missing or refused bucket is one line, before anything runs
    except (ConfigError, StorageError) as exc:
        _fail(str(exc))
    try:
        if config.training.runners == "external":
            click.echo(f"waiting for runners: agent-lightning runner --store {lstore.url} --config {config_path}", err=True)
        summary = fit(
            algorithm, agent, lstore, train_tasks, eval_tasks, n_workers=config.training.n_workers, runners=config.training.runners
        )
    except ConfigError as exc:  # found once running, e.g. an endpoint no call can succeed against
        _fail(str(exc))
    click.echo(json.dumps(summary, indent=2, default=str))


@main.command(name="eval")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="The config.yaml whose agent and eval tasks to use.")
@click.option(
    "--checkpoint",
    default=None,
    help="Evaluate this instead of the configured model: a checkpoint folder, or a run (its folder, its name under "
    "$AGL_HOME/runs, or its id) for its latest checkpoint.",
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--store", default=None, help=STORE_HELP)
@click.option("-v", "--verbose", is_flag=True, help=VERBOSE_HELP)
def eval_(config_path: str, checkpoint: str | None, overrides: tuple[str, ...], store: str | None, verbose: bool) -> None:
    """Evaluate the agent on the config's eval task sets and print a table: one row per set, then all."""
    from rich.console import Console
    from rich.table import Table

    from agl_core.cli.config import ConfigError
    from agl_core.cli.evaluate import evaluate_config
    from agl_core.training.run_mirror import StorageError
    from agl_core.training.runs import run_folder

    config, lstore = _prepare(config_path, overrides, store, verbose)
    try:
        checkpoint = str(run_folder(checkpoint, lstore)) if checkpoint else None  # fetched from AGL_STORAGE=s3://… if only there
        rows = evaluate_config(config, lstore, checkpoint=checkpoint)
    except (ConfigError, FileNotFoundError, StorageError) as exc:
        _fail(str(exc))
    table = Table(title="evaluation")
    for col in ("task set", "n", "mean reward", "success rate"):
        table.add_column(col)
    for row in rows if len(rows) > 2 else rows[:1]:  # one set: its row says it all
        table.add_row(row["task_set"], str(row["n"]), f"{row['mean_reward']:.3f}", f"{row['success_rate']:.3f}")
    Console().print(table)
    scored = f"checkpoint {checkpoint}" if checkpoint else f"{_model_line(config)}, as configured (--checkpoint scores a run)"
    click.echo(f"scored: {scored}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; beyond loopback needs --token.")
@click.option("--port", default=4318, show_default=True, type=int, help="Port to listen on (0: a free one).")
@click.option("--store", default=None, help="Local store behind the server: sqlite:///PATH, postgresql://… or memory:// (default: AGL_STORAGE or $AGL_HOME/store.db).")
@click.option("--grpc-port", default=None, type=int, help="Also receive OTLP/gRPC on this port (e.g. 4317).")
@click.option(
    "--token", default=None, envvar="AGL_STORE_TOKEN", help="Token every request must send (env AGL_STORE_TOKEN); required beyond loopback."
)
@click.option(
    "--heartbeat-timeout",
    default=None,
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="A running attempt silent for this long is timed out and its rollout requeued (default 60).",
)
@click.option("--ssl-certfile", default=None, type=click.Path(dir_okay=False, exists=True), help="Serve HTTPS with this certificate (PEM; with --ssl-keyfile).")
@click.option("--ssl-keyfile", default=None, type=click.Path(dir_okay=False, exists=True), help="The private key of --ssl-certfile (PEM).")
@click.option("-v", "--verbose", is_flag=True, help="Log every request.")
def collector(
    host: str,
    port: int,
    store: str | None,
    grpc_port: int | None,
    token: str | None,
    heartbeat_timeout: float | None,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
    verbose: bool,
) -> None:
    """Serve the store over HTTP and receive OTLP/HTTP traces at /v1/traces; prints its URL once listening."""
    from agl_core.server import serve_collector
    from agl_core.server.access import AccessError

    if (ssl_certfile is None) != (ssl_keyfile is None):
        _fail("--ssl-certfile and --ssl-keyfile go together")
    try:
        serve_collector(
            host,
            port,
            store,
            grpc_port=grpc_port,
            token=token,
            heartbeat_timeout=heartbeat_timeout,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            verbose=verbose,
        )
    except (AccessError, ValueError) as exc:
        _fail(str(exc))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; beyond loopback needs --token.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on (0: a free one).")
@click.option("--store", default=None, help=STORE_HELP.replace("the config's store, ", ""))
@click.option(
    "--token", default=None, envvar="AGL_DASHBOARD_TOKEN", help="Token browsers must send (env AGL_DASHBOARD_TOKEN); required beyond loopback."
)
@click.option("-v", "--verbose", is_flag=True, help="Log every request.")
def dashboard(host: str, port: int, store: str | None, token: str | None, verbose: bool) -> None:
    """Runs, reward and loss curves, rollouts and traces in the browser; prints its URL once listening."""
    from agl_core.dashboard import serve_dashboard
    from agl_core.server.access import AccessError

    try:
        serve_dashboard(host, port, store, token, verbose=verbose)
    except AccessError as exc:
        _fail(str(exc))


@main.command()
@click.option("--run", "run", required=True, help="The run to export: its folder, its name under $AGL_HOME/runs, or its id.")
@click.option("--format", "fmt", required=True, help="hf, lora, prompt or traces-jsonl (formats come from plugins).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option(
    "--checkpoint",
    default="latest",
    show_default=True,
    help="hf/lora: which checkpoint: latest, best (highest held-out reward) or a step number.",
)
@click.option("--store", default=None, help=STORE_HELP.replace("the config's store, ", ""))
def export(run: str, fmt: str, out: str, checkpoint: str, store: str | None) -> None:
    """Export a run's model, adapter, best prompt or traces."""
    from agl_core.cli.launch import dependency_missing
    from agl_core.plugins.manager import merged
    from agl_core.store import LightningStore
    from agl_core.training.run_mirror import StorageError

    exporters = merged("agl_exporters")
    if fmt not in exporters:
        _fail(f"unknown export format {fmt!r}; available: {', '.join(sorted(exporters))}")
    try:
        click.echo(exporters[fmt](run=run, out=out, store=LightningStore(store), checkpoint=checkpoint))
    except ModuleNotFoundError as exc:  # a trainer's exporter imports its dependencies when called
        if not dependency_missing(exc):
            raise
        _fail(f"export format {fmt!r} needs {exc.name!r}, which is not installed")
    except (FileNotFoundError, ValueError, StorageError) as exc:  # a run only in AGL_STORAGE=s3://… is fetched first
        _fail(str(exc))


@main.command()
def plugins() -> None:
    """List the plugins found and whether each framework is installed."""
    from agl_core.plugins.manager import algorithms, framework_status, get_plugin_manager
    from agl_core.training.tasksets import task_set_names

    for row in framework_status():
        state = f"installed {row['installed_version']}" if row["installed"] else f"not installed (pip install 'agentlightning[{row.get('extra', row['name'])}]')"
        click.echo(f"{row['name']:<18} {row['plugin']:<22} {state}")
    listed = [f"{name} [{spec.extra}]" if spec.extra else name for name, spec in sorted(algorithms().items())]
    click.echo(f"algorithms:  {', '.join(listed) or 'none'}")
    click.echo(f"task sets:   {', '.join(task_set_names())}")
    click.echo(f"plugins:     {', '.join(name for name, _ in get_plugin_manager().list_name_plugin())}")


def _placeholder(name: str, extra: str, help_text: str) -> click.Command:
    @click.command(name=name, help=help_text, context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def command(args: tuple[str, ...]) -> None:
        _fail(f"'agent-lightning {name}' needs the trainer: pip install 'agentlightning[{extra}]'")

    return command


def _add_plugin_commands() -> None:
    from agl_core.plugins.manager import get_plugin_manager

    main.add_command(_placeholder("serve", "rl", "Serve a model as an OpenAI-compatible endpoint that records token ids."))
    for commands in get_plugin_manager().hook.agl_cli_commands():
        for command in commands or []:
            main.add_command(command)


main.add_command(runner_command)
_add_plugin_commands()

if __name__ == "__main__":
    main()
