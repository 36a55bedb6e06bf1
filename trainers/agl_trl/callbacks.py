"""What a run reports as it goes, as callbacks the RL and SFT loops share (in the spirit of TRL's
``TrainerCallback``): per-step metrics to the store, ``metrics.jsonl`` and the log (one line per
step with reward, loss and time left), the run folder's ``training.log``, a progress bar on a
terminal, checkpoint pruning (``save_total_limit``) and, with ``AGL_STORAGE=s3://…``, the
run folder mirrored to object storage.

A loop calls `Callbacks` at fixed points: ``on_train_begin`` before the first step,
``on_log(metrics)`` once per finished step (its checkpoint, if any, already written),
``on_step_end`` after that, and ``on_train_end`` however the run ends.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from agl_core.store.base import LightningStore
from agl_core.training.run_mirror import RunMirror

from .checkpoints import list_checkpoints, prune_checkpoints

log = logging.getLogger("agentlightning")


@dataclass
class TrainerState:
    """Where a run stands: its id and folder, the steps to reach, the last one finished."""

    run_id: str
    output_dir: Path
    total_steps: int
    step: int = 0
    #: what a step is called in the console (``step``, or ``round`` for SFT)
    unit: str = "step"


class TrainerCallback:
    """A run's hooks; each does nothing unless overridden."""

    def on_train_begin(self, state: TrainerState) -> None:
        pass

    def on_log(self, state: TrainerState, metrics: dict[str, Any]) -> None:
        pass

    def on_step_end(self, state: TrainerState) -> None:
        pass

    def on_train_end(self, state: TrainerState) -> None:
        pass


class Callbacks:
    """Callbacks called in order; ``with callbacks.training(state):`` brackets the run with
    ``on_train_begin``/``on_train_end`` (the latter also when a step raises)."""

    def __init__(self, callbacks: Sequence[TrainerCallback]) -> None:
        self.callbacks = list(callbacks)

    @contextlib.contextmanager
    def training(self, state: TrainerState) -> Iterator[None]:
        started: list[TrainerCallback] = []
        try:
            for callback in self.callbacks:
                callback.on_train_begin(state)
                started.append(callback)
            yield
        finally:
            for callback in reversed(started):
                callback.on_train_end(state)

    def on_log(self, state: TrainerState, metrics: dict[str, Any]) -> None:
        for callback in self.callbacks:
            callback.on_log(state, metrics)

    def on_step_end(self, state: TrainerState) -> None:
        for callback in self.callbacks:
            callback.on_step_end(state)


def format_metrics(metrics: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items() if k != "step")


class StoreMetrics(TrainerCallback):
    """Each step's metrics to the store (``add_metrics``), where the dashboard reads them."""

    def __init__(self, store: LightningStore) -> None:
        self.store = store

    def on_log(self, state: TrainerState, metrics: dict[str, Any]) -> None:
        self.store.add_metrics(state.run_id, state.step, metrics)


class MetricsFile(TrainerCallback):
    """Each step's metrics as one JSON line of ``<output_dir>/metrics.jsonl``."""

    def on_log(self, state: TrainerState, metrics: dict[str, Any]) -> None:
        with open(state.output_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(metrics) + "\n")


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


#: The metrics a step's line and the progress bar lead with, under their short names.
HEADLINE = {"reward_mean": "reward", "loss": "loss"}


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return {short: metrics[key] for key, short in HEADLINE.items() if metrics.get(key) is not None}


class StepLog(TrainerCallback):
    """Each step as one INFO line of the ``agentlightning`` log: reward, loss and the time left first
    (from this session's pace), then every other metric. Without a terminal, this is the progress."""

    def __init__(self) -> None:
        self._started = 0.0
        self._first_step = 0

    def on_train_begin(self, state: TrainerState) -> None:
        self._started, self._first_step = time.monotonic(), state.step

    def on_log(self, state: TrainerState, metrics: dict[str, Any]) -> None:
        head = headline(metrics)
        done, left = state.step - self._first_step, state.total_steps - state.step
        if done > 0 and left > 0:
            head["eta"] = format_duration((time.monotonic() - self._started) / done * left)
        rest = format_metrics({k: v for k, v in metrics.items() if k not in HEADLINE})
        line = f"{state.unit} {state.step}/{state.total_steps} {format_metrics(head)}"
        log.info("%s", f"{line} | {rest}" if rest else line)


class TrainingLogFile(TrainerCallback):
    """Mirror the ``agentlightning`` log (at INFO) into ``<output_dir>/training.log`` during the run."""

    def __init__(self) -> None:
        self._handler: logging.Handler | None = None
        self._previous_level = logging.NOTSET

    def on_train_begin(self, state: TrainerState) -> None:
        handler = logging.FileHandler(state.output_dir / "training.log")
        handler.setLevel(logging.INFO)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self._handler, self._previous_level = handler, log.level
        if log.getEffectiveLevel() > logging.INFO:
            log.setLevel(logging.INFO)
        log.addHandler(handler)

    def on_train_end(self, state: TrainerState) -> None:
        if self._handler is not None:
            log.removeHandler(self._handler)
            self._handler.close()
            self._handler = None
            log.setLevel(self._previous_level)


class ProgressBar(TrainerCallback):
    """On a terminal, a rich bar over the steps with the last reward and loss and the time left; off
    a terminal nothing (`StepLog`'s lines are the progress there)."""

    def __init__(self) -> None:
        self._progress: Any = None
        self._task: Any = None

    def on_train_begin(self, state: TrainerState) -> None:
        from agl_core.cli.logs import console

        if not console.is_terminal:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = (
            TextColumn(f"training ({state.unit}s)"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[head]}"), TextColumn("eta"), TimeRemainingColumn(),
        )  # fmt: skip
        self._progress = Progress(*columns, console=console, transient=False)
        self._progress.start()
        self._task = self._progress.add_task("steps", total=state.total_steps, completed=state.step, head="")

    def on_log(self, state: TrainerState, metrics: dict[str, Any]) -> None:
        if self._progress is not None:
            self._progress.update(self._task, head=format_metrics(headline(metrics)))

    def on_step_end(self, state: TrainerState) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=state.step)

    def on_train_end(self, state: TrainerState) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class SaveTotalLimit(TrainerCallback):
    """Keep the newest `limit` checkpoints and the best-scored one (TRL's ``save_total_limit``),
    locally and, with `mirror`, in object storage (uploaded in ``on_log``, before this).

    It prunes at the end of a step, once the step's metrics (the held-out score that names the
    best checkpoint) are in ``metrics.jsonl``."""

    def __init__(self, limit: int, mirror: RunMirror | None = None) -> None:
        self.limit, self.mirror = limit, mirror

    def on_step_end(self, state: TrainerState) -> None:
        for pruned in prune_checkpoints(state.output_dir, self.limit):
            if self.mirror is not None:
                self.mirror.delete_checkpoint(pruned)


def default_callbacks(store: LightningStore, save_total_limit: int | None) -> Callbacks:
    """What every run reports: store, ``metrics.jsonl``, the step lines, ``training.log``, progress, pruning."""
    callbacks: list[TrainerCallback] = [StoreMetrics(store), MetricsFile(), StepLog(), TrainingLogFile(), ProgressBar()]
    mirror = RunMirror.from_env()
    if save_total_limit:
        callbacks.append(SaveTotalLimit(save_total_limit, mirror))
    if mirror is not None:
        callbacks.append(MirrorRun(mirror, store))
    return Callbacks(callbacks)


class MirrorRun(TrainerCallback):
    """Mirror the run folder to ``AGL_STORAGE``'s object storage (`agl_core.training.run_mirror`):
    each step's new checkpoint (committed with a store snapshot), then the run's files; the files
    once more when the run ends."""

    def __init__(self, mirror: RunMirror, store: LightningStore) -> None:
        self.mirror, self.store = mirror, store
        self._uploaded: set[str] = set()

    def on_train_begin(self, state: TrainerState) -> None:
        self._uploaded = {p.name for p in list_checkpoints(state.output_dir)}  # restored or already there
        self.mirror.upload_run_files(state.output_dir)

    def on_log(self, state: TrainerState, metrics: dict[str, Any]) -> None:
        for checkpoint in list_checkpoints(state.output_dir):
            if checkpoint.name not in self._uploaded:
                self.mirror.upload_checkpoint(checkpoint, self.store.url)
                self._uploaded.add(checkpoint.name)
        self.mirror.upload_run_files(state.output_dir)

    def on_train_end(self, state: TrainerState) -> None:
        self.mirror.upload_run_files(state.output_dir)
