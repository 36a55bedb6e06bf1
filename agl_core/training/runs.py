"""Finding a run from what a user types: its folder's path, its folder's name under
``$AGL_HOME/runs`` (as ``ls`` shows it), or its run id. ``export --run``, ``eval --checkpoint``
and the dashboard all resolve runs here, so each accepts all three."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from agl_core.paths import runs_dir
from agl_core.store.base import LightningStore


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
    """The run `run` names, as a path, a folder name under `runs_dir()`, or a run id in `store`.

    Raises FileNotFoundError, naming the folders that do exist, when it is none of them."""
    for folder in (Path(run).expanduser(), runs_dir() / run):
        if run and folder.is_dir():
            return RunLocation(_folder_run_id(folder), folder)
    found = store.get_run(run)
    if found is not None:
        return RunLocation(found.run_id, Path(found.output_dir) if found.output_dir else None)
    known = ", ".join(sorted(p.name for p in runs_dir().iterdir() if p.is_dir())) or "none"
    raise FileNotFoundError(
        f"no run {run!r}: not a folder, not a run folder under {runs_dir()} (there: {known}), not a run id in {store.url}"
    )


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
