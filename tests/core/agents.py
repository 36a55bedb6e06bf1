"""Module-level agents for process-worker tests (they must be importable by name)."""


def square_reward(task, resources):
    return float(task * task)
