"""Train an unmodified agent *program*: ``agent.command: "python my_agent.py {input}"``.

Each rollout runs the command under ``opentelemetry-instrument`` with the OTLP exporter pointed
at a store server and the rollout ids in ``OTEL_RESOURCE_ATTRIBUTES``, so the framework plugins
trace the program with no code change; ``OPENAI_BASE_URL`` is the rollout-scoped endpoint of the
rollout's LLM resource. The program's stdout is scored by the reward function.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

from agl_core.runtime.agent import task_question
from agl_core.runtime.graders import grade
from agl_core.tracing.context import current_rollout
from agl_core.tracing.emit import current_llm_endpoint, emit_reward
from agl_core.types import Resource

RewardFn = Callable[[Any, str], float]


class CommandAgent:
    def __init__(
        self,
        name: str,
        command: str,
        *,
        reward: RewardFn | None = None,
        cwd: str | Path | None = None,
        timeout_s: float = 300.0,
    ) -> None:
        self.name = name
        self.argv = shlex.split(command)
        self.reward = reward
        self.cwd = str(cwd) if cwd else None
        self.timeout_s = timeout_s
        self._collector: Any = None
        self._lock = threading.Lock()

    def _otlp_exporter_env(self, store: Any) -> dict[str, str]:
        """Where the program's OTLP exporter sends spans: the store server behind an `HttpStore`
        (with its token, as our client presents it), else a collector of our own on loopback."""
        from agl_core.store.http_client import TOKEN_ENV, HttpStore

        if isinstance(store, HttpStore):
            env = {"OTEL_EXPORTER_OTLP_ENDPOINT": store.url}
            if token := os.environ.get(TOKEN_ENV):
                env["OTEL_EXPORTER_OTLP_HEADERS"] = f"authorization=Bearer%20{quote(token)}"
            return env
        with self._lock:
            if self._collector is None:
                from agl_core.server.background import BackgroundCollector

                self._collector = BackgroundCollector(store).start()
            return {"OTEL_EXPORTER_OTLP_ENDPOINT": self._collector.url}

    def environment(self, rollout: Any) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                **self._otlp_exporter_env(rollout.store),
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_METRICS_EXPORTER": "none",
                "OTEL_LOGS_EXPORTER": "none",
                "OTEL_RESOURCE_ATTRIBUTES": ",".join(f"{k}={v}" for k, v in rollout.attributes().items()),
                "OTEL_BSP_SCHEDULE_DELAY": "100",
            }
        )
        endpoint = current_llm_endpoint()
        if endpoint is not None:
            env["OPENAI_BASE_URL"] = endpoint.base_url(rollout.rollout_id, rollout.attempt_id)
            env["OPENAI_API_KEY"] = endpoint.api_key or env.get("OPENAI_API_KEY", "agl-local")
            env["AGL_MODEL"] = endpoint.model
        return env

    def __call__(self, task: Any, resources: dict[str, Resource]) -> float | None:
        rollout = current_rollout()
        if rollout is None or rollout.store is None:
            raise RuntimeError("a CommandAgent runs inside a runner rollout")
        values = {"input": task_question(task), "task_json": json.dumps(task)}
        argv = [arg.format(**values) for arg in self.argv]
        launcher = shutil.which("opentelemetry-instrument") or str(Path(sys.executable).parent / "opentelemetry-instrument")
        result = subprocess.run(
            [launcher, *argv],
            env=self.environment(rollout),
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=self.timeout_s,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{argv[0]} exited with {result.returncode}: {result.stderr.strip()[-500:]}")
        output = result.stdout.strip()
        reward = self.reward(task, output) if self.reward else grade(task, output)
        if reward is not None:
            emit_reward(reward)
        return reward
