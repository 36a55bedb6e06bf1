"""A run's record, shared by the RL and SFT trainers: its `Run` row in the store, ``run.json``,
the held-out accuracies before and after (``heldout.json``, kept across a resume) and the summary
``train()`` returns."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Literal, TypeVar

from agl_core.cli.logs import log_file, setup_logging
from agl_core.paths import default_run_dir
from agl_core.store.base import LightningStore
from agl_core.training.run_mirror import RunMirror
from agl_core.types import Run

from .callbacks import format_metrics
from .checkpoints import checkpoint_step, latest_checkpoint

log = logging.getLogger("agentlightning")


class RunRecord:
    """``RunRecord(store, cfg, run_id, resumed)``: `begin` before training, `finish` after it."""

    def __init__(self, store: LightningStore, cfg: Any, run_id: str, *, resumed: bool) -> None:
        self.store, self.cfg, self.run_id = store, cfg, run_id
        self.output_dir = Path(cfg.output_dir)
        self._heldout_path = self.output_dir / "heldout.json"
        self.heldout: dict[str, Any] = (
            json.loads(self._heldout_path.read_text()) if resumed and self._heldout_path.exists() else {}
        )

    def _run(self, status: Literal["running", "finished"] = "running") -> Run:
        cfg = self.cfg
        return Run(
            run_id=self.run_id, algorithm=cfg.algorithm, config=dataclasses.asdict(cfg), output_dir=str(self.output_dir),
            status=status,
        )  # fmt: skip

    def begin(self) -> None:
        self.store.upsert_run(self._run())
        run = {"run_id": self.run_id, "algorithm": self.cfg.algorithm, "store": self.store.url}
        (self.output_dir / "run.json").write_text(json.dumps(run))
        where = f"folder {self.output_dir}; log {log_file()}; store {self.store.url}"
        log.info("run %s (%s): %s", self.run_id, self.cfg.algorithm, where)

    def needs(self, when: str) -> bool:
        """Whether the held-out accuracy `when` (``before``/``after``) is still to be measured."""
        return when not in self.heldout

    def record_heldout(self, when: str, metrics: dict[str, float], *, step: int | None = None) -> None:
        """Keep `metrics` as the held-out accuracy `when`; with `step`, also as that step's store metrics."""
        self.heldout[when] = {k: v for k, v in metrics.items() if k.startswith("heldout_")}
        self._heldout_path.write_text(json.dumps(self.heldout, indent=2))
        if step is not None:
            self.store.add_metrics(self.run_id, step, dict[str, float | None](metrics))
        log.info("held-out %s: %s", when, format_metrics(self.heldout[when]))

    def finish(self, checkpoint: Path | None) -> dict[str, Any]:
        """Mark the run finished; the summary (paths, ``{sampled,greedy}_{before,after}``)."""
        self.store.upsert_run(self._run("finished"))
        out = self.output_dir
        summary: dict[str, Any] = {
            "run_id": self.run_id,
            "algorithm": self.cfg.algorithm,
            "output_dir": str(out),
            "checkpoint": str(checkpoint) if checkpoint else None,
            "metrics": str(out / "metrics.jsonl"),
            "log": str(out / "training.log"),
            "home_log": str(log_file()),
            "store": self.store.url,
            "heldout": self.heldout,
        }
        for when in ("before", "after"):
            for mode in ("sampled", "greedy"):
                value = self.heldout.get(when, {}).get(f"heldout_accuracy_{mode}")
                if value is not None:
                    summary[f"{mode}_{when}"] = value
        log.info(
            "run %s finished: folder %s (checkpoint %s, metrics.jsonl, heldout.json, training.log); log %s; store %s",
            self.run_id, out, summary["checkpoint"], summary["home_log"], summary["store"],
        )  # fmt: skip
        return summary


C = TypeVar("C")

#: What a run writes into its folder; a fresh run sets an earlier run's aside (`with_run_folder`).
RUN_FILES = ("run.json", "metrics.jsonl", "heldout.json", "training.log", "checkpoints", "trl")


def with_run_folder(cfg: C, agent: str, store: LightningStore, *, resume: bool) -> C:
    """Ready a run of `cfg` (an `RLConfig` or `SFTConfig`) training `agent`: its ``output_dir``
    resolved (default ``$AGL_HOME/runs/<agent>-<algorithm>``) and created, and the log set up
    (console and ``$AGL_HOME/logs/training.log``), from Python as from the CLI.

    The default folder is stable so that a resume finds it; a fresh run there moves an earlier
    run's files to ``<folder>@<its run id>`` (its stored run follows), so that checkpoints and
    metrics of two runs never mix and nothing is deleted."""
    setup_logging()
    current: Any = cfg  # a dataclass with output_dir and algorithm
    out = Path(current.output_dir or default_run_dir(agent, current.algorithm)).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    mirror = RunMirror.from_env()
    if mirror is not None:
        mirror.check()  # a missing bucket is one line now, not a traceback mid-run
        if resume:  # a fresh machine: the latest checkpoint in the bucket, when newer than ours
            latest = latest_checkpoint(out)
            mirror.restore(out, checkpoint_step(latest) if latest else None)
    if not resume and (out / "run.json").is_file():
        _set_aside(out, store)
    resolved: C = dataclasses.replace(current, output_dir=str(out))
    return resolved


def _set_aside(out: Path, store: LightningStore) -> None:
    earlier = str(json.loads((out / "run.json").read_text()).get("run_id") or "earlier")
    target = out.with_name(f"{out.name}@{earlier}")
    target.mkdir(exist_ok=True)
    for name in RUN_FILES:
        if (out / name).exists():
            (out / name).rename(target / name)
    found = store.get_run(earlier)
    if found is not None:
        store.upsert_run(found.model_copy(update={"output_dir": str(target)}))
    log.warning("%s held run %s: moved it to %s (resume=True or --resume continues a run instead)", out, earlier, target)
