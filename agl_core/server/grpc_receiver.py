"""OTLP/gRPC trace receiver (port 4317 by convention), the default of ``opentelemetry-distro``.

Needs ``grpcio`` (installed with ``opentelemetry-exporter-otlp-proto-grpc``); the HTTP receiver
does not. Spans map to the store exactly as on ``/v1/traces``.
"""

from __future__ import annotations

import logging
from concurrent import futures

from agl_core.server import otlp
from agl_core.server.access import REFUSALS, TokenGate, bearer
from agl_core.server.limits import MAX_BODY_BYTES, LimitError
from agl_core.store.base import LightningStore, StoreUnavailable

log = logging.getLogger("agentlightning.collector")


def start_grpc_receiver(
    store: LightningStore, host: str = "127.0.0.1", port: int = 4317, workers: int = 4, token: str | None = None
):
    """Start serving OTLP/gRPC in background threads; returns ``(grpc.Server, bound port)``. With a
    `token`, an export without ``authorization: Bearer <token>`` metadata is refused (UNAUTHENTICATED),
    and a client over its failed attempts (`TokenGate`) too (RESOURCE_EXHAUSTED)."""
    try:
        import grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as pb
        from opentelemetry.proto.collector.trace.v1 import (
            trace_service_pb2_grpc as pb_grpc,
        )
    except ImportError as exc:
        raise ImportError(
            f"OTLP/gRPC needs {exc.name}: pip install 'agentlightning[otlp]' opentelemetry-exporter-otlp-proto-grpc"
        ) from exc

    gate = TokenGate(token) if token is not None else None

    class TraceService(pb_grpc.TraceServiceServicer):
        def Export(self, request, context):  # noqa: N802 (gRPC's name)
            if gate is not None:
                client = context.peer().rsplit(":", 1)[0]  # "ipv4:10.0.0.2:53412": the address, not the connection
                presented = gate.matches(bearer(dict(context.invocation_metadata())))  # gRPC keys are lower case
                refused = gate.refusal(client, presented)
                if refused == 429:
                    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, REFUSALS[429])
                elif refused is not None:
                    context.abort(grpc.StatusCode.UNAUTHENTICATED, "this store server needs its token (AGL_STORE_TOKEN)")
            try:
                decoded = otlp.spans_from_request(request)
                if decoded.spans:
                    store.add_spans(decoded.spans)
            except LimitError as exc:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, exc.message)
            except (ValueError, TypeError) as exc:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"spans refused by the store: {exc}")
            except StoreUnavailable as exc:  # disk full, database unreachable: exporters retry UNAVAILABLE
                context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
            response = pb.ExportTraceServiceResponse()
            if decoded.rejected:
                response.partial_success.rejected_spans = decoded.rejected
                response.partial_success.error_message = "; ".join(decoded.errors)
                log.warning("OTLP/gRPC: %d span(s) rejected", decoded.rejected)
            return response

    size = [("grpc.max_receive_message_length", MAX_BODY_BYTES)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=size)
    pb_grpc.add_TraceServiceServicer_to_server(TraceService(), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if not bound:
        raise OSError(f"cannot listen for OTLP/gRPC on {host}:{port}")
    server.start()
    return server, bound
