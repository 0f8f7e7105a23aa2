"""Shared test harness: offline DSPy, a real stand-in LM server, local OTLP receivers (HTTP and gRPC).

DSPy reads DSPY_CACHEDIR and LiteLLM reads LITELLM_LOCAL_MODEL_COST_MAP when first imported, so both are
set here, before any test module imports dspy.
"""

from __future__ import annotations

import base64
import gzip
import os
import tempfile
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator, NamedTuple

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ.setdefault("DSPY_CACHEDIR", tempfile.mkdtemp(prefix="lmscope-test-dspy-cache-"))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import pytest  # noqa: E402


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    """No LMSCOPE_/OTEL_/LANGFUSE_/MLFLOW_ variable from the outer shell; cwd is tmp_path, no pyproject.toml above.

    Option tests use it for every test (autouse in their module or folder) and get tmp_path back.
    """
    from lmscope.telemetry.options import find_pyproject

    for name in list(os.environ):
        if name.startswith(("LMSCOPE_", "OTEL_", "LANGFUSE_", "MLFLOW_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    assert find_pyproject(tmp_path) is None
    return tmp_path


@pytest.fixture(scope="session")
def lm_server():
    from lmscope._lm_server import StandInLM

    with StandInLM() as server:
        yield server


def _metric_series(reader):
    """{metric name: {frozenset(attribute items): value}} from one collect of `reader`; a counter's value is
    its sum, a histogram's is (count, sum). Metrics with no point are absent."""
    found = {}
    data = reader.get_metrics_data()
    for resource_metrics in (data.resource_metrics if data is not None else ()):
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                series = found.setdefault(metric.name, {})
                for point in metric.data.data_points:
                    value = (point.count, point.sum) if hasattr(point, "bucket_counts") else point.value
                    series[frozenset(point.attributes.items())] = value
    return found


@pytest.fixture
def metric_series():
    return _metric_series
# --- local OTLP receivers (HTTP and gRPC), shared by the exporter tests ---------------------------------------


class Received(NamedTuple):
    path: str
    headers: dict[str, str]
    """Lower-cased names; gRPC metadata for the gRPC receiver."""
    request: Any
    """The decoded `ExportTraceServiceRequest`."""


class _Recording:
    def __init__(self) -> None:
        self.requests: list[Received] = []

    def records(self) -> list[Any]:
        """Every received span as a `SpanRecord`, the shape `lmscope tree` and the trace file reader use."""
        from google.protobuf.json_format import MessageToDict

        from lmscope.telemetry.trace_file import records_from_request

        records = []
        for received in self.requests:
            decoded = MessageToDict(received.request)
            for resource_spans in decoded.get("resourceSpans", ()):
                for scope_spans in resource_spans.get("scopeSpans", ()):
                    for span in scope_spans.get("spans", ()):
                        for key in ("traceId", "spanId", "parentSpanId"):
                            if span.get(key):  # protobuf's JSON gives bytes as base64; OTLP/JSON wants hex
                                span[key] = base64.b64decode(span[key]).hex()
            records.extend(records_from_request(decoded))
        return records


class OtlpHttpReceiver(_Recording):
    """An OTLP/HTTP (protobuf) receiver on 127.0.0.1 that records every POST, gzip or deflate bodies decoded."""

    def __init__(self) -> None:
        super().__init__()
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                body = gzip.decompress(body) if encoding == "gzip" else zlib.decompress(body) \
                    if encoding == "deflate" else body
                request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
                receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                  request))
                reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def _serve(receiver: OtlpHttpReceiver) -> Iterator[OtlpHttpReceiver]:
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def receiver() -> Iterator[OtlpHttpReceiver]:
    yield from _serve(OtlpHttpReceiver())


@pytest.fixture
def second_receiver() -> Iterator[OtlpHttpReceiver]:
    yield from _serve(OtlpHttpReceiver())


class OtlpGrpcReceiver(_Recording):
    """An OTLP/gRPC TraceService on 127.0.0.1; `endpoint` is its http:// URL, as exporters take it."""

    def __init__(self) -> None:
        super().__init__()
        from concurrent import futures

        import grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

        receiver = self

        class Servicer(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - generated name
                metadata = {key.lower(): value for key, value in context.invocation_metadata()}
                receiver.requests.append(Received("TraceService/Export", metadata, request))
                return trace_service_pb2.ExportTraceServiceResponse()

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Servicer(), self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"http://127.0.0.1:{port}"


@pytest.fixture
def grpc_receiver() -> Iterator[OtlpGrpcReceiver]:
    receiver = OtlpGrpcReceiver()
    receiver.server.start()
    yield receiver
    receiver.server.stop(grace=None)
