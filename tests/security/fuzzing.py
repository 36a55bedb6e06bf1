"""What every fuzzed answer must be: below 500, and a refusal is one line of JSON (or, for an OTLP
protobuf request, a ``google.rpc.Status``); `TALLY` counts requests per server for the summary line."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field

import httpx
from hypothesis import HealthCheck, settings

#: The settings of every fuzz test (bounded, deterministic, no example database); each sets its
#: own ``max_examples``.
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)


def examples(n: int) -> int:
    """`n` examples, times ``AGL_FUZZ_SCALE`` (default 1: the whole fuzz suite in well under 90 s on
    two cores; ``AGL_FUZZ_SCALE=4`` is the long run of more than 10,000 requests)."""
    return max(1, round(n * float(os.environ.get("AGL_FUZZ_SCALE", "1"))))


@dataclass
class Tally:
    requests: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    server_errors: int = 0

    def record(self, server: str, status: int) -> None:
        self.requests[server] += 1
        self.statuses[status // 100 * 100] += 1
        self.server_errors += status >= 500

    def summary(self) -> str:
        per_server = ", ".join(f"{name} {n}" for name, n in sorted(self.requests.items()))
        classes = ", ".join(f"{k // 100}xx {n}" for k, n in sorted(self.statuses.items()))
        return (
            f"fuzz: {sum(self.requests.values())} generated requests ({per_server}); answers {classes}; "
            f"{self.server_errors} answers >= 500"
        )


TALLY = Tally()


def check_answer(server: str, response: httpx.Response) -> None:
    """Count `response` and assert it is no server error and, if a refusal, a one-line error."""
    TALLY.record(server, response.status_code)
    assert response.status_code < 500, f"{server}: {response.status_code} {response.text[:300]}"
    if response.status_code < 400:
        return
    if response.headers.get("content-type") == "application/x-protobuf":  # OTLP answers a protobuf request so
        from google.rpc import status_pb2

        status = status_pb2.Status()
        status.ParseFromString(response.content)
        assert status.message and "\n" not in status.message
        return
    assert response.headers["content-type"].startswith("application/json"), response.headers["content-type"]
    assert "\n" not in response.text.strip(), response.text[:300]
    assert isinstance(json.loads(response.text), dict)
