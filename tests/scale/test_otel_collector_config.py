"""``deploy/otel-collector.yaml``: its pipeline forwards to our collector the way our collector
takes it. The exporter is configured from the file's own values (endpoint + ``/v1/traces``, the
bearer header with the env var expanded, gzip), as the Collector's ``otlphttp`` exporter would."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from agl_core.server import BackgroundCollector
from agl_core.store.sql import SqlStore

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "otel-collector.yaml"


def expand(value: str, env: dict[str, str]) -> str:
    """The Collector's ``${env:NAME}`` substitution."""
    return re.sub(r"\$\{env:(\w+)\}", lambda m: env[m.group(1)], value)


def test_the_deploy_config_batches_otlp_into_our_collector_with_its_token() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    pipeline = config["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"] and "batch" in pipeline["processors"]
    [name] = pipeline["exporters"]
    assert name.split("/")[0] == "otlphttp"
    exporter = config["exporters"][name]

    store = SqlStore("memory://")
    with BackgroundCollector(store, token="s3cret") as server:
        env = {"AGL_COLLECTOR_URL": server.url, "AGL_STORE_TOKEN": "s3cret"}
        sent = OTLPSpanExporter(
            endpoint=expand(exporter["endpoint"], env) + "/v1/traces",
            headers={k: expand(v, env) for k, v in exporter["headers"].items()},
            compression=Compression(exporter["compression"]),
        )
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(sent))
        provider.get_tracer("deploy-test").start_span("through the collector").end()
        provider.shutdown()
        names = [s.name for s in store.query_spans(unassigned=True)]
    assert names == ["through the collector"]
    store.close()
