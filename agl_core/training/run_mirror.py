"""Run folders mirrored to object storage: ``AGL_STORAGE=s3://bucket/prefix`` (any fsspec URL).

The live store stays local (the embedded SQLite, or ``--store``); what a run writes into its folder
goes to ``<prefix>/runs/<folder name>/`` too: ``run.json``, ``metrics.jsonl``, ``heldout.json``,
``training.log`` and each checkpoint, with a snapshot of the store (SQLite's backup API) taken at
that checkpoint as ``store.db`` beside its files. A checkpoint counts remotely only once its marker
``checkpoints/step-N.done`` (the list of its files) is written, last, after every file is up; a
half-uploaded checkpoint is never the latest. Each upload is retried. A pruned checkpoint is deleted
there too, marker first. A fresh machine resuming a run downloads the run files and its committed
checkpoints into the local folder first; ``export --run`` and ``eval --checkpoint`` fetch a run found
only there the same way (`agl_core.training.runs`), and the dashboard lists the runs it holds.

Standard cloud settings apply (for S3: ``AWS_ENDPOINT_URL``, the credentials chain); s3fs comes
with ``pip install agentlightning[s3]``.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable, TypeVar

from agl_core.paths import object_storage

log = logging.getLogger("agentlightning")

#: The run folder's files that are mirrored as they are (checkpoints go through `upload_checkpoint`).
RUN_FILES = ("run.json", "metrics.jsonl", "heldout.json", "training.log")
SNAPSHOT = "store.db"
_MARKER = re.compile(r"^step-(\d+)\.done$")
T = TypeVar("T")


class StorageError(RuntimeError):
    """Object storage that cannot be used (missing bucket, access refused, s3fs missing): one line."""


class RunMirror:
    """Object storage at `url` holding run folders under ``<url>/runs/``."""

    def __init__(self, url: str, *, attempts: int = 4, backoff_s: float = 0.5) -> None:
        try:
            import fsspec
        except ImportError:  # pragma: no cover - fsspec is a core dependency's dependency
            raise StorageError(f"AGL_STORAGE={url}: needs fsspec (pip install 'agentlightning[s3]')") from None
        try:
            self.fs, root = fsspec.core.url_to_fs(url, skip_instance_cache=True)
        except (ImportError, ValueError) as exc:
            raise StorageError(f"AGL_STORAGE={url}: {exc} (pip install 'agentlightning[s3]' for s3://)") from None
        self.url, self.root = url, root.rstrip("/")
        self.attempts, self.backoff_s = attempts, backoff_s
        self._claimed: set[str] = set()

    @classmethod
    def from_env(cls) -> RunMirror | None:
        """The mirror ``AGL_STORAGE`` names, or None when it names a store (or nothing)."""
        url = object_storage()
        return cls(url) if url else None

    def check(self) -> None:
        """Fail with one line unless the storage exists and takes writes (done before a run starts)."""
        probe = f"{self.root}/.agl-write-check"
        try:
            if "file" in _protocols(self.fs):
                self.fs.makedirs(self.root, exist_ok=True)
            self.fs.pipe_file(probe, b"ok")
            self.fs.rm_file(probe)
        except FileNotFoundError:
            raise StorageError(f"AGL_STORAGE={self.url}: bucket '{self.root.split('/')[0]}' does not exist") from None
        except PermissionError as exc:
            raise StorageError(f"AGL_STORAGE={self.url}: access refused ({_one_line(exc)})") from None
        except OSError as exc:
            raise StorageError(f"AGL_STORAGE={self.url}: cannot write there ({_one_line(exc)})") from None

    def run_key(self, folder: Path) -> str:
        return f"{self.root}/runs/{folder.name}"

    # --- writing -----------------------------------------------------------------------------------
    def upload_run_files(self, folder: Path) -> None:
        self._claim(folder)
        for name in RUN_FILES:
            if (folder / name).is_file():
                self._put(folder / name, f"{self.run_key(folder)}/{name}")

    def upload_checkpoint(self, checkpoint: Path, store_url: str | None = None) -> None:
        """Upload `checkpoint` (``<run>/checkpoints/step-N``) and, for a SQLite store, a snapshot of
        it; then commit with the marker."""
        self._claim(checkpoint.parent.parent)
        base = f"{self.run_key(checkpoint.parent.parent)}/checkpoints"
        files = sorted(p.relative_to(checkpoint).as_posix() for p in checkpoint.rglob("*") if p.is_file())
        for name in files:
            self._put(checkpoint / name, f"{base}/{checkpoint.name}/{name}")
        database = _sqlite_path(store_url)
        if database is not None and database.is_file():
            with tempfile.TemporaryDirectory() as tmp:
                snapshot = Path(tmp) / SNAPSHOT
                _backup(database, snapshot)
                self._put(snapshot, f"{base}/{checkpoint.name}/{SNAPSHOT}")
            files.append(SNAPSHOT)
        marker = json.dumps({"files": files}).encode()
        self._retry(lambda: self.fs.pipe_file(f"{base}/{checkpoint.name}.done", marker))

    def _claim(self, folder: Path) -> None:
        """Before a run first writes to `folder`'s key: when storage holds another run there (a fresh
        run reusing the folder, whose predecessor the trainer set aside locally as ``<name>@<id>``),
        move that one to ``<name>@<its run id>`` too, so that two runs' checkpoints never mix."""
        key = self.run_key(folder)
        if key in self._claimed:
            return
        self._claimed.add(key)
        ours, theirs = _run_id((folder / "run.json").read_text()) if (folder / "run.json").is_file() else None, None
        if ours is not None and (text := self.read_text(folder.name, "run.json")) is not None:
            theirs = _run_id(text)
        if theirs is None or theirs == ours:
            return
        target = f"{key}@{theirs}"
        files = [str(f) for f in self.fs.find(key) if str(f).startswith(f"{key}/")]
        markers = [f for f in files if _MARKER.match(f.rsplit("/", 1)[-1])]
        rest = [f for f in files if f not in markers]
        # committed where it goes before uncommitted where it was: markers are copied last and deleted first
        for source in rest + markers:
            self._retry(partial(self.fs.copy, source, target + source[len(key) :]))
        for source in markers + rest:
            self._retry(partial(self.fs.rm_file, source))
        log.warning("%s/runs/%s held run %s: moved it to %s@%s", self.url, folder.name, theirs, folder.name, theirs)

    # --- reading -----------------------------------------------------------------------------------
    def committed_steps(self, folder: Path) -> list[int]:
        """The steps of the run's committed checkpoints in storage, oldest first."""
        base = f"{self.run_key(folder)}/checkpoints"
        self.fs.invalidate_cache()
        try:
            names = [str(p).rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(base, detail=False)]
        except FileNotFoundError:
            return []
        return sorted(int(m[1]) for n in names if (m := _MARKER.match(n)))

    def restore(self, folder: Path, local_step: int | None) -> int | None:
        """`fetch` the run into `folder` when storage holds a later checkpoint than `local_step` (None:
        the folder holds none); returns that latest step (None when nothing was newer)."""
        steps = self.committed_steps(folder)
        if not steps or (local_step is not None and steps[-1] <= local_step):
            return None
        self.fetch(folder)
        log.info("restored %s (checkpoints up to step-%d) from %s", folder, steps[-1], self.url)
        return steps[-1]

    def fetch(self, folder: Path, into: Path | None = None) -> list[int]:
        """Download the run of `folder` (its name names it in storage) into `into` (default: `folder`):
        its files are in, and the latest one's store snapshot as ``store.db`` beside them (the run's
        rollouts and traces). Local and remote then hold the same checkpoints, so pruning one prunes
        both. Returns the committed steps."""
        target, key = into or folder, self.run_key(folder)
        target.mkdir(parents=True, exist_ok=True)
        for name in RUN_FILES:
            if self.fs.exists(f"{key}/{name}"):
                self._get(f"{key}/{name}", target / name)
        steps = self.committed_steps(folder)
        for step in steps:
            if not (target / "checkpoints" / f"step-{step}").is_dir():
                self._get_checkpoint(key, step, target)
        if steps and self.fs.exists(snapshot := f"{key}/checkpoints/step-{steps[-1]}/{SNAPSHOT}"):
            self._get(snapshot, target / SNAPSHOT)
        return steps

    def _get_checkpoint(self, key: str, step: int, folder: Path) -> None:
        base = f"{key}/checkpoints"
        marker = json.loads(self._retry(lambda: self.fs.cat_file(f"{base}/step-{step}.done")))
        staging = folder / "checkpoints" / f"step-{step}.tmp"
        for name in marker["files"]:
            if name != SNAPSHOT:
                self._get(f"{base}/step-{step}/{name}", staging / name)
        staging.rename(staging.with_name(f"step-{step}"))

    def run_names(self) -> list[str]:
        """The folder names of the runs in storage (none when the bucket does not exist)."""
        self.fs.invalidate_cache()
        try:
            entries = self.fs.ls(f"{self.root}/runs", detail=True)
        except FileNotFoundError:
            return []
        except OSError as exc:  # access refused, unreachable: one line
            raise StorageError(f"AGL_STORAGE={self.url}: cannot read there ({_one_line(exc)})") from None
        return sorted(str(e["name"]).rstrip("/").rsplit("/", 1)[-1] for e in entries if e.get("type") == "directory")

    def read_text(self, run: str, name: str) -> str | None:
        """The run file `name` (e.g. ``metrics.jsonl``) of the run in folder `run`; None when absent."""
        try:
            return self._retry(lambda: self.fs.cat_file(f"{self.root}/runs/{run}/{name}")).decode()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"AGL_STORAGE={self.url}: cannot read there ({_one_line(exc)})") from None

    def modified(self, run: str, name: str) -> float | None:
        """When the run file was last written (seconds since the epoch); None when unknown."""
        try:
            return float(self.fs.modified(f"{self.root}/runs/{run}/{name}").timestamp())
        except (FileNotFoundError, NotImplementedError):
            return None

    # --- deleting ----------------------------------------------------------------------------------
    def delete_checkpoint(self, checkpoint: Path) -> None:
        """Drop `checkpoint` (``<run>/checkpoints/step-N``) from storage, its marker first: a reader
        sees it committed and whole, or not at all."""
        base = f"{self.run_key(checkpoint.parent.parent)}/checkpoints/{checkpoint.name}"
        try:
            self._retry(lambda: self.fs.rm_file(f"{base}.done"))
        except FileNotFoundError:
            pass  # never committed, or already uncommitted: the files below may remain
        try:
            self._retry(lambda: self.fs.rm(base, recursive=True))
        except FileNotFoundError:
            pass

    # --- transfers, retried ------------------------------------------------------------------------
    def _put(self, local: Path, key: str) -> None:
        self._retry(lambda: self.fs.put_file(str(local), key))

    def _get(self, key: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        self._retry(lambda: self.fs.get_file(key, str(local)))

    def _retry(self, action: Callable[[], T]) -> T:
        for attempt in range(1, self.attempts + 1):
            try:
                return action()
            except (OSError, TimeoutError) as exc:
                if attempt == self.attempts or isinstance(exc, (FileNotFoundError, PermissionError)):
                    raise
                log.warning("storage %s: %s; retrying (%d/%d)", self.url, _one_line(exc), attempt, self.attempts - 1)
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
        raise AssertionError("unreachable")


def check_storage() -> None:
    """Fail with one `StorageError` line unless ``AGL_STORAGE``'s object storage (if any) is usable."""
    mirror = RunMirror.from_env()
    if mirror is not None:
        mirror.check()


def _protocols(fs: Any) -> tuple[str, ...]:
    return (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)


def _run_id(run_json: str) -> str | None:
    run_id = json.loads(run_json).get("run_id")
    return str(run_id) if run_id else None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _sqlite_path(url: str | None) -> Path | None:
    if not url or not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[1] if ":///" in url else ""
    return Path(path) if path and path != ":memory:" else None


def _backup(database: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database (the backup API, safe while others write)."""
    source, dest = sqlite3.connect(database), sqlite3.connect(target)
    try:
        source.backup(dest)
    finally:
        dest.close()
        source.close()
