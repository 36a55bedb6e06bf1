"""Fixtures shared by the trainer tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.trainers.rl_fixtures import save_policy, single_thread


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny memorising policy saved once per test module; torch runs single-threaded meanwhile."""
    threads = single_thread()
    yield save_policy(tmp_path_factory.mktemp("policy"))
    torch.set_num_threads(threads)
