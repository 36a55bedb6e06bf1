"""A real S3-compatible server (moto) on 127.0.0.1 for the ``AGL_STORAGE=s3://…`` tests.

The trainer tests get one through the ``s3`` fixture (``tests/trainers/conftest.py``); other tests
start one with `moto_endpoint` and give `aws_env` to their subprocesses."""

from __future__ import annotations

import contextlib
from typing import Iterator

import pytest

moto_server = pytest.importorskip("moto.server", reason="needs moto[server]")


@contextlib.contextmanager
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server on a free port of 127.0.0.1 while the block runs; its URL."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def aws_env(endpoint: str) -> dict[str, str]:
    """Standard AWS settings that point boto3/s3fs at `endpoint` with test credentials."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
