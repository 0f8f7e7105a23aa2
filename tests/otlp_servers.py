"""Local OTLP/HTTP backends on 127.0.0.1 for tests and benchmarks: healthy, failing, hanging, refused.

Every server runs in daemon threads on a free port and is a context manager; `url` is its base URL (an
exporter appends /v1/traces). `tests/conftest.py` exposes them as fixtures; benchmarks import this file.

- `OtlpReceiver`: a working collector. Decodes each ExportTraceServiceRequest (protobuf, or OTLP/JSON when the
  Content-Type is application/json; gzip or deflate bodies too) and keeps `Received(path, headers, request)`. `OtlpReceiverProcess` runs one in its own interpreter.
- `OtlpGrpcReceiver`: the same over gRPC (Jaeger's 4317 contract); `endpoint` is its http:// URL.
- `SlowReceiver`: an `OtlpReceiver` that stores each request at once and answers only after a delay (or when the
  test releases it), as a cold MLflow server's first request does.
- `StatusServer`: reads the request and answers every POST with one status code (500 by default).
- `HangingServer`: accepts connections and never answers, as a wedged collector does.
- `refused_url()`: a port on which nobody listens.
"""

from __future__ import annotations

import gzip
import json
import socket
import subprocess
import sys
import threading
import urllib.request
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2


class Received(NamedTuple):
    path: str
    headers: dict[str, str]
    """Lower-cased names; gRPC metadata for the gRPC receiver."""
    request: trace_service_pb2.ExportTraceServiceRequest


class _Recording:
    """What both receivers keep, and the views tests read it through."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._lock = threading.Lock()

    def _keep(self, received: Received) -> None:
        with self._lock:
            self.requests.append(received)

    def spans(self) -> list[Any]:
        """Every span received, in arrival order (protobuf `Span` messages)."""
        with self._lock:
            requests = [received.request for received in self.requests]
        return [span for request in requests for resource in request.resource_spans
                for scope in resource.scope_spans for span in scope.spans]

    def span_ids(self) -> list[str]:
        return [span.span_id.hex() for span in self.spans()]

    def records(self) -> list[Any]:
        """Every received span as a `SpanRecord`, the shape `lmscope tree` and the trace file reader use."""
        import base64

        from google.protobuf.json_format import MessageToDict

        from lmscope.telemetry._trace_file import records_from_request

        with self._lock:
            requests = [received.request for received in self.requests]
        records = []
        for request in requests:
            decoded = MessageToDict(request)
            for resource_spans in decoded.get("resourceSpans", ()):
                for scope_spans in resource_spans.get("scopeSpans", ()):
                    for span in scope_spans.get("spans", ()):
                        for key in ("traceId", "spanId", "parentSpanId"):
                            if span.get(key):  # protobuf's JSON gives bytes as base64; OTLP/JSON wants hex
                                span[key] = base64.b64decode(span[key]).hex()
            records.extend(records_from_request(decoded))
        return records


class _Server:
    """Start/stop of a ThreadingHTTPServer in a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def read_body(self) -> bytes:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        if encoding == "gzip":
            return gzip.decompress(body)
        return zlib.decompress(body) if encoding == "deflate" else body

    def reply(self, status: int, body: bytes = b"", content_type: str = "application/x-protobuf") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


_JSON_ID_KEYS = ("traceId", "spanId", "parentSpanId")


def parse_otlp_json(body: bytes) -> trace_service_pb2.ExportTraceServiceRequest:
    """An OTLP/JSON body as the collector reads it: ids are hex (the spec's one exception to the protobuf JSON
    mapping, which would take them as base64), every other field by `json_format`, unknown fields rejected.
    Raises ValueError on anything a collector would answer 400 to."""
    import base64

    from google.protobuf.json_format import ParseDict

    document = json.loads(body)
    for resource_spans in document.get("resourceSpans", ()):
        for scope_spans in resource_spans.get("scopeSpans", ()):
            for span in scope_spans.get("spans", ()):
                for item in (span, *span.get("links", ())):
                    for key in _JSON_ID_KEYS:
                        if key in item:
                            raw = bytes.fromhex(item[key])  # ValueError unless hex
                            if len(raw) not in (8, 16):
                                raise ValueError(f"{key} {item[key]!r} is not an 8- or 16-byte hex id")
                            item[key] = base64.b64encode(raw).decode("ascii")
    return ParseDict(document, trace_service_pb2.ExportTraceServiceRequest())


class OtlpReceiver(_Server, _Recording):
    """A working OTLP/HTTP receiver that records `Received(path, headers lowercased, decoded request)`.

    Set `status` to an error code to make it refuse exports (unrecorded) until it is set back to 200; put codes
    in `fail_next` to answer the next requests with them, one each. A body it cannot decode gets a 400.
    """

    def __init__(self) -> None:
        _Recording.__init__(self)
        self.status = 200
        self.fail_next: list[int] = []
        self.posts = 0
        receiver = self

        class Handler(_QuietHandler):
            def do_POST(self) -> None:
                body = self.read_body()
                receiver.posts += 1
                if receiver.status != 200 or receiver.fail_next:
                    status = receiver.fail_next.pop(0) if receiver.fail_next else receiver.status
                    receiver._before_answer()
                    self.reply(status)
                    return
                is_json = (self.headers.get("Content-Type") or "").split(";")[0].strip() == "application/json"
                try:
                    request = (parse_otlp_json(body) if is_json
                               else trace_service_pb2.ExportTraceServiceRequest.FromString(body))
                except Exception:  # noqa: BLE001 - a collector answers 400 to a body it cannot decode
                    self.reply(400)
                    return
                receiver._keep(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, request))
                receiver._before_answer()
                if is_json:
                    self.reply(200, b"{}", "application/json")
                else:
                    self.reply(200, trace_service_pb2.ExportTraceServiceResponse().SerializeToString())

            def do_GET(self) -> None:
                self.reply(200, json.dumps(receiver.span_ids()).encode())

        _Server.__init__(self, Handler)

    def _before_answer(self) -> None:
        """Called after a request was read (and, if accepted, stored), before it is answered."""


class SlowReceiver(OtlpReceiver):
    """Stores each accepted request at once, then answers after `answer_after_s` (or as soon as `release` is set).

    `stored` is set when the first request has been read (and, unless `status`/`fail_next` refuse it, stored).
    A stand-in for a cold MLflow server, whose first OTLP request
    can take longer than lmscope's shutdown bound and still store every span.
    """

    def __init__(self, answer_after_s: float = 30.0) -> None:
        super().__init__()
        self.answer_after_s = answer_after_s
        self.stored = threading.Event()
        self.release = threading.Event()

    def _before_answer(self) -> None:
        self.stored.set()
        self.release.wait(self.answer_after_s)

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        super().__exit__(*exc)


class OtlpGrpcReceiver(_Recording):
    """An OTLP/gRPC TraceService on 127.0.0.1; `endpoint` is its http:// URL, as exporters take it."""

    def __init__(self) -> None:
        super().__init__()
        from concurrent import futures

        import grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

        receiver = self

        class Servicer(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                metadata = {key.lower(): value for key, value in context.invocation_metadata()}
                receiver._keep(Received("TraceService/Export", metadata, request))
                return trace_service_pb2.ExportTraceServiceResponse()

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Servicer(), self.server)
        self.endpoint = f"http://127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"

    def __enter__(self) -> OtlpGrpcReceiver:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(grace=None)


class StatusServer(_Server):
    """Answers every POST with `status` after reading the body; counts the requests."""

    def __init__(self, status: int = 500) -> None:
        self.posts = 0
        server = self

        class Handler(_QuietHandler):
            def do_POST(self) -> None:
                self.read_body()
                server.posts += 1
                self.reply(status)

        super().__init__(Handler)


class HangingServer:
    """Accepts TCP connections and never reads or answers; holds them open until closed."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(64)
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self.connections: list[socket.socket] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        self._socket.settimeout(0.2)
        while not self._closed.is_set():
            try:
                connection, _ = self._socket.accept()
            except OSError:
                continue
            self.connections.append(connection)

    def __enter__(self) -> HangingServer:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._closed.set()
        self._thread.join()
        for connection in self.connections:
            connection.close()
        self._socket.close()


class OtlpReceiverProcess:
    """An OtlpReceiver in its own interpreter, as a real collector is: it takes no GIL time from the process
    under test (an in-process receiver decoding thousands of spans competes with the exporter it serves)."""

    def __init__(self) -> None:
        self._process = subprocess.Popen([sys.executable, __file__, "receive"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        self.url: str = json.loads(self._process.stdout.readline())["ok"]

    def span_ids(self) -> list[str]:
        with urllib.request.urlopen(self.url + "/span-ids", timeout=30) as answer:
            return json.loads(answer.read())

    def __enter__(self) -> OtlpReceiverProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self._process.communicate("", timeout=30)


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (for a server to bind, or for nobody to listen on)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def refused_url() -> str:
    """A URL on a port that was free a moment ago: connecting to it is refused."""
    return f"http://127.0.0.1:{free_port()}"


def serve_all() -> None:
    """Run a receiver, a 500 server and a hanging server until stdin closes (for benchmarks, which keep the
    servers' CPU out of the measured process). Prints their URLs as one JSON line, then counts at the end."""
    if sys.argv[1:] == ["receive"]:
        with OtlpReceiver() as ok:
            print(json.dumps({"ok": ok.url}), flush=True)
            sys.stdin.read()
        return
    with OtlpReceiver() as ok, StatusServer(500) as failing, HangingServer() as hanging:
        print(json.dumps({"ok": ok.url, "failing": failing.url, "hanging": hanging.url}), flush=True)
        sys.stdin.read()
        print(json.dumps({"received_spans": len(ok.spans()), "failing_posts": failing.posts,
                          "hanging_connections": len(hanging.connections)}), flush=True)


if __name__ == "__main__":
    serve_all()
