"""A runner process whose agent announces the rollout it claimed, then hangs until it is killed.

``python -m tests.faults.hanging_runner STORE_URL FOLDER``: writes ``FOLDER/<rollout id>`` once the
agent runs (heartbeats every 0.2 s meanwhile).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from agl_core.runtime.runner import Runner, rollout
from agl_core.tracing.context import current_rollout


@rollout(name="hangs")
def hangs(task: Any, resources: dict[str, Any]) -> float:
    context = current_rollout()
    assert context is not None
    (Path(sys.argv[2]) / context.rollout_id).write_text(context.attempt_id)
    time.sleep(120)  # bounded: the test kills this process long before
    return 0.0


if __name__ == "__main__":
    Runner(hangs, sys.argv[1], heartbeat_interval=0.2).run(max_rollouts=1)
