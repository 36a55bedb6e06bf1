"""``agent-lightning runner`` processes on one ``agent-lightning collector``, all real subprocesses
on 127.0.0.1: a runner killed mid-way loses nothing (its rollouts come back after the heartbeat
timeout and finish exactly once), and a runner stopped with SIGTERM leaves nothing running."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pytest

from agl_core.store import LightningStore
from agl_core.store.sql import SqlStore
from tests.faults.procs import CLI, kill9, wait_until

AGENT = """
import time
from opentelemetry import trace

_tracer = trace.get_tracer("scale-test")


def agent(task, resources):
    with _tracer.start_as_current_span("work", attributes={"task.i": task["i"]}):
        time.sleep(task["sleep"])
    return 1.0
"""
HEARTBEAT_TIMEOUT_S = 3.0  # runners beat every 0.5 s


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder holding the agent module; runners start there, so ``--agent scale_agent:agent`` imports it."""
    (tmp_path / "scale_agent.py").write_text(AGENT)
    return tmp_path


@contextlib.contextmanager
def collector(workdir: Path) -> Iterator[tuple[str, str]]:
    """``agent-lightning collector`` on a free port over a SQLite file: (its URL, the file's URL)."""
    db = f"sqlite:///{workdir / 'store.db'}"
    args = [CLI, "collector", "--port", "0", "--store", db, "--heartbeat-timeout", str(HEARTBEAT_TIMEOUT_S)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert match, line + proc.stdout.read()
        yield match.group(0), db
    finally:
        proc.terminate()
        proc.wait(15)


def start_runner(workdir: Path, url: str, workers: int, out: Any = subprocess.PIPE) -> subprocess.Popen:
    args = [
        CLI,
        "runner",
        "--store",
        url,
        "--agent",
        "scale_agent:agent",
        "--workers",
        str(workers),
        "--heartbeat-interval",
        "0.5",
    ]
    return subprocess.Popen(args, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, text=True)


def enqueue(url: str, n: int, sleep: float, max_attempts: int) -> list[str]:
    store = LightningStore(url)
    return [store.enqueue_rollout({"i": i, "sleep": sleep}, max_attempts=max_attempts).rollout_id for i in range(n)]


def holds_rollouts(store: LightningStore, pid: int) -> bool:
    """Whether the runner process `pid` is running an attempt now."""
    running = store.query_rollouts("running")
    return any(f"-{pid}-" in (a.worker_id or "") for r in running for a in store.query_attempts(r.rollout_id)[-1:])


def test_a_runner_killed_mid_way_loses_no_rollout_and_none_finishes_twice(workdir: Path, capsys: Any) -> None:
    started = time.monotonic()
    with collector(workdir) as (url, db):
        ids = enqueue(url, 300, sleep=0.2, max_attempts=3)
        store = LightningStore(url)
        log = open(workdir / "runners.log", "w")
        victim, survivor = start_runner(workdir, url, 4, log), start_runner(workdir, url, 4, log)
        try:
            wait_until(
                lambda: store.count_rollouts("succeeded") >= 60 and holds_rollouts(store, victim.pid),
                90,
                "60 rollouts done, the victim holding some",
                poll=0.2,
            )
            kill9(victim)
            wait_until(lambda: store.count_rollouts("succeeded") == 300, 150, "all 300 rollouts done", poll=0.5)
        finally:
            for proc in (victim, survivor):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(60)
            log.close()
        elapsed = time.monotonic() - started
        local = SqlStore(db)
        rollouts = {r.rollout_id: r for r in local.query_rollouts()}
        attempts = {rid: local.query_attempts(rid) for rid in ids}
        spans = {rid: local.query_spans(rid) for rid in ids}
        local.close()
    succeeded_attempts = Counter(sum(a.status == "succeeded" for a in attempts[rid]) for rid in ids)
    requeued = [rid for rid in ids if attempts[rid][0].status == "timeout"]
    victims = {a.worker_id for rid in requeued for a in attempts[rid][:1]}
    misfiled = [
        (rid, s.attributes["task.i"])
        for rid in ids
        for s in spans[rid]
        if s.name == "work" and s.attributes["task.i"] != rollouts[rid].input["i"]
    ]
    work_spans = Counter(
        sum(s.name == "work" and s.attempt_id == ok.attempt_id for s in spans[rid])
        for rid in ids
        for ok in attempts[rid]
        if ok.status == "succeeded"
    )
    with capsys.disabled():
        print(
            f"\nscale: 2 runners x 4 workers, one kill -9'd: {sum(r.status == 'succeeded' for r in rollouts.values())}/300 "
            f"succeeded in {elapsed:.1f} s; succeeded attempts per rollout {dict(succeeded_attempts)}; "
            f"{len(requeued)} requeued after the heartbeat timeout; work spans per succeeded attempt {dict(work_spans)}; "
            f"misfiled spans {len(misfiled)}"
        )
    assert [rollouts[rid].status for rid in ids] == ["succeeded"] * 300
    assert succeeded_attempts == {1: 300}  # exactly once
    assert requeued and all(f"-{victim.pid}-" in (w or "") for w in victims)  # the killed runner's, and only its
    assert work_spans == {1: 300} and not misfiled  # each span under its own rollout and attempt
    assert survivor.returncode == 0
    assert elapsed < 180


def test_sigterm_finishes_the_rollouts_in_hand_and_claims_no_more(workdir: Path, capsys: Any) -> None:
    with collector(workdir) as (url, _):
        ids = enqueue(url, 12, sleep=1.5, max_attempts=1)  # one attempt: a released rollout would show as failed
        store = LightningStore(url)
        proc = start_runner(workdir, url, 3)
        try:
            wait_until(lambda: store.count_rollouts("running") == 3, 60, "three rollouts running", poll=0.1)
            os.kill(proc.pid, signal.SIGTERM)
            out, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                kill9(proc)
        counts = {status: store.count_rollouts(status) for status in ("running", "succeeded", "failed", "queuing")}
        with capsys.disabled():
            print(f"\nscale: runner stopped by SIGTERM with 3 rollouts in hand: exit {proc.returncode}, {counts}")
    assert proc.returncode == 0, out
    assert "stopped after" in out
    assert counts["running"] == 0 and counts["failed"] == 0
    assert counts["succeeded"] >= 3 and counts["succeeded"] + counts["queuing"] == len(ids)


def test_ctrl_c_on_worker_processes_finishes_the_rollouts_in_hand(workdir: Path) -> None:
    """Ctrl-C signals the whole process group, worker processes included: they must not fail
    their rollouts with KeyboardInterrupt; the parent stops them as it does on SIGTERM."""
    with collector(workdir) as (url, _):
        enqueue(url, 6, sleep=1.5, max_attempts=1)
        store = LightningStore(url)
        args = [CLI, "runner", "--store", url, "--agent", "scale_agent:agent", "--processes", "2"]
        proc = subprocess.Popen(args, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)  # fmt: skip
        try:
            wait_until(lambda: store.count_rollouts("running") == 2, 90, "two rollouts running", poll=0.1)
            os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
            out, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        counts = {status: store.count_rollouts(status) for status in ("running", "succeeded", "failed")}
    assert proc.returncode == 0, out
    assert counts["running"] == 0 and counts["failed"] == 0 and counts["succeeded"] >= 2, (counts, out)


def test_a_store_out_of_reach_is_one_error_line_not_a_silent_runner(workdir: Path) -> None:
    args = [CLI, "runner", "--store", "http://127.0.0.1:1", "--agent", "scale_agent:agent"]
    result = subprocess.run(args, cwd=workdir, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: store server http://127.0.0.1:1 unreachable")


def test_the_configs_agent_on_worker_processes_until_the_store_is_idle(workdir: Path) -> None:
    db = f"sqlite:///{workdir / 'store.db'}"
    (workdir / "config.yaml").write_text(
        f"agent: {{name: scaled, type: python, entrypoint: 'scale_agent:agent'}}\nstore: '{db}'\n"
    )
    ids = enqueue(db, 6, sleep=0.1, max_attempts=1)
    args = [CLI, "runner", "--config", "config.yaml", "--processes", "2", "--exit-when-idle", "1"]
    result = subprocess.run(args, cwd=workdir, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "2 worker processes, store " + db in result.stdout
    store = SqlStore(db)
    assert [store.get_rollout(rid).status for rid in ids] == ["succeeded"] * 6  # type: ignore[union-attr]
    assert {s.name for rid in ids for s in store.query_spans(rid)} >= {"invoke_agent scaled", "work"}
    assert all((a.worker_id or "").startswith("proc-") for rid in ids for a in store.query_attempts(rid))
    store.close()
