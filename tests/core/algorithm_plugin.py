"""A plain plugin module registering two algorithms, as a third-party trainer package would:
``echo`` (runs every training task `repeats` times and reports the rewards) and ``needs-gpu``,
whose factory imports a module that is not installed (a trainer without its dependencies)."""

from __future__ import annotations

from typing import Any, Sequence

from agl_core.plugins.hookspecs import hookimpl
from agl_core.store.base import LightningStore
from agl_core.training.algorithm import Algorithm
from agl_core.training.registry import AlgorithmRegistrar, TrainingOptions
from agl_core.types import Task


class EchoOptions(TrainingOptions):
    repeats: int = 1


class EchoAlgorithm(Algorithm):
    name = "echo"

    def __init__(self, options: EchoOptions, resume: bool) -> None:
        self.options = options
        self.resume = resume

    def run(self, store: LightningStore, train_tasks: Sequence[Task], eval_tasks: Sequence[Task]) -> dict[str, Any]:
        rollouts = self.run_rollouts(store, train_tasks, resources_id=None, repeats=self.options.repeats, timeout=30)
        return {"rewards": sorted(r.final_reward for r in rollouts), "resume": self.resume, "repeats": self.options.repeats}


def build_echo(config: Any, *, resume: bool = False) -> EchoAlgorithm:
    return EchoAlgorithm(config.training, resume)


def build_needs_gpu(config: Any, *, resume: bool = False) -> Algorithm:
    import agl_test_gpu_runtime  # noqa: F401  (not installed anywhere)

    raise AssertionError("unreachable")


def agent(task: dict[str, Any], resources: dict[str, Any]) -> float:
    return float(task["answer"])


@hookimpl
def agl_register_algorithms(registrar: AlgorithmRegistrar) -> None:
    registrar.add("echo", factory=build_echo, schema=EchoOptions)
    registrar.add("needs-gpu", factory=build_needs_gpu, extra="gpu")
