"""Finding a run from what a user types: its folder's path, its folder's name under
``$AGL_HOME/runs`` (as ``ls`` shows it), or its run id. ``export --run``, ``eval --checkpoint``
and the dashboard all resolve runs here, so each accepts all three.

With ``AGL_STORAGE=s3://…`` (`agl_core.training.run_mirror`), a run found only in object storage,
by folder name or run id, is fetched into ``$AGL_HOME/runs/<its folder name>`` (its files and
committed checkpoints) and used from there; `stored_runs` reads the runs there for the dashboard."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from agl_core.paths import runs_dir
from agl_core.store.base import LightningStore
from agl_core.training.run_mirror import RunMirror
from agl_core.types import MetricRecord, Run


@dataclass(frozen=True)
class RunLocation:
    """A run found: its id (None for a folder without ``run.json``) and its folder (None for a
    stored run that recorded none)."""

    run_id: str | None
    folder: Path | None


def _folder_run_id(folder: Path) -> str | None:
    meta = folder / "run.json"
    if not meta.is_file():
        return None
    run_id = json.loads(meta.read_text()).get("run_id")
    return str(run_id) if run_id else None


def find_run(run: str, store: LightningStore) -> RunLocation:
    """The run `run` names, as a path, a folder name under `runs_dir()`, a run id in `store`, or
    (with ``AGL_STORAGE=s3://…``) a folder name or run id in object storage, fetched first.

    Raises FileNotFoundError, naming the folders that do exist, when it is none of them."""
    for folder in (Path(run).expanduser(), runs_dir() / run):
        if run and folder.is_dir():
            return RunLocation(_folder_run_id(folder), folder)
    found = store.get_run(run)
    if found is not None and (found.output_dir is None or Path(found.output_dir).is_dir()):
        return RunLocation(found.run_id, Path(found.output_dir) if found.output_dir else None)
    mirror = RunMirror.from_env()
    fetched = _fetch(mirror, run) if mirror is not None and run else None
    if fetched is not None:
        return fetched
    if found is not None:  # its folder is on another machine
        return RunLocation(found.run_id, Path(found.output_dir) if found.output_dir else None)
    known = ", ".join(sorted(p.name for p in runs_dir().iterdir() if p.is_dir() and not p.name.startswith("."))) or "none"
    where = f", not a run in AGL_STORAGE={mirror.url}" if mirror is not None else ""
    raise FileNotFoundError(
        f"no run {run!r}: not a folder, not a run folder under {runs_dir()} (there: {known}), not a run id in {store.url}{where}"
    )


def _fetch(mirror: RunMirror, run: str) -> RunLocation | None:
    """The run `run` (folder name or run id) in `mirror`, downloaded into `runs_dir()`; None if absent.

    It lands under a temporary name first, so an interrupted fetch never passes for the run."""
    names = mirror.run_names()
    name = run if run in names else next((n for n in names if _stored_run_id(mirror, n) == run), None)
    if name is None:
        return None
    folder = runs_dir() / name
    if folder.exists():  # `run` is an id whose folder name is taken here
        if _folder_run_id(folder) == run:
            return RunLocation(run, folder)
        raise FileNotFoundError(f"run {run} is {mirror.url}/runs/{name}, but {folder} holds another run: move it away to fetch it")
    staging = folder.with_name(f".{name}.fetching")
    shutil.rmtree(staging, ignore_errors=True)
    mirror.fetch(folder, into=staging)
    staging.rename(folder)
    return RunLocation(_folder_run_id(folder), folder)


def _stored_run_id(mirror: RunMirror, name: str) -> str | None:
    text = mirror.read_text(name, "run.json")
    run_id = json.loads(text).get("run_id") if text else None
    return str(run_id) if run_id else None


def run_id_of(run: str, store: LightningStore) -> str:
    """The run id of `run` (see `find_run`); a folder must hold a ``run.json``."""
    location = find_run(run, store)
    if location.run_id is None:
        raise FileNotFoundError(f"{location.folder} has no run.json: it is not a run folder")
    return location.run_id


def run_folder(run: str, store: LightningStore) -> Path:
    """The folder of `run` (see `find_run`)."""
    location = find_run(run, store)
    if location.folder is None:
        raise FileNotFoundError(f"run {location.run_id} recorded no folder in {store.url}")
    return location.folder


def stored_runs(mirror: RunMirror) -> list[tuple[Run, list[MetricRecord]]]:
    """The runs in object storage with their metrics, newest first, read from each run's
    ``run.json``, ``metrics.jsonl`` and ``heldout.json`` (the held-out score before training is
    step 0's, as in the store). A run is ``finished`` once its held-out score after training is in."""
    found = []
    for name in mirror.run_names():
        meta = json.loads(mirror.read_text(name, "run.json") or "{}")
        if not meta.get("run_id"):
            continue
        heldout = json.loads(mirror.read_text(name, "heldout.json") or "{}")
        updated = mirror.modified(name, "metrics.jsonl") or mirror.modified(name, "run.json") or 0.0
        run = Run(
            run_id=str(meta["run_id"]), algorithm=str(meta.get("algorithm") or "?"), status="finished" if "after" in heldout else "running",
            created_at=updated, updated_at=updated, output_dir=f"{mirror.url.rstrip('/')}/runs/{name}",
        )  # fmt: skip
        lines = [json.loads(line) for line in (mirror.read_text(name, "metrics.jsonl") or "").splitlines() if line.strip()]
        steps = ([{"step": 0, **heldout["before"]}] if "before" in heldout else []) + lines
        records = [MetricRecord(run_id=run.run_id, step=int(m["step"]), metrics=_numbers(m), timestamp=updated) for m in steps]
        found.append((run, records))
    return sorted(found, key=lambda item: item[0].created_at, reverse=True)


def _numbers(metrics: dict[str, object]) -> dict[str, float | None]:
    return {k: float(v) if isinstance(v, (int, float)) else None for k, v in metrics.items() if k != "step"}
