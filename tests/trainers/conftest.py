"""Fixtures shared by the trainer tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
import torch

import agentlightning as agl
from agl_core.store import LightningStore
from agl_trl.serve.app import ModelServer
from tests.trainers import serve_model
from tests.trainers.rl_fixtures import save_policy, single_thread


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny memorising policy saved once per test module; torch runs single-threaded meanwhile."""
    threads = single_thread()
    yield save_policy(tmp_path_factory.mktemp("policy"))
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny():
    """The serve tests' memorising model and tokenizer, built once per module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 2-layer model: more threads only add contention
    yield serve_model.build()
    torch.set_num_threads(threads)


@pytest.fixture()
def store():
    """A fresh in-memory store, this process's default span store."""
    store = LightningStore("memory://")
    agl.configure(store=store)
    return store


@pytest.fixture()
def server(tiny, store):
    """A started `ModelServer` on `tiny` at policy version 3, its spans going to `store`."""
    model, tokenizer = tiny
    with ModelServer(model, tokenizer, model_name="policy", store=store, policy_version=3) as server:
        yield server


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """A real S3-compatible server (moto) on 127.0.0.1 for the module's tests."""
    from tests.trainers.moto_s3 import moto_endpoint

    with moto_endpoint() as url:
        yield url


@pytest.fixture()
def s3(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A boto3 client with the bucket ``runs-bucket``; this process's AWS settings point at moto."""
    import boto3

    from tests.trainers.moto_s3 import aws_env

    for key, value in aws_env(moto_url).items():
        monkeypatch.setenv(key, value)
    boto3.client("s3").create_bucket(Bucket="runs-bucket")
    return boto3.client("s3")
