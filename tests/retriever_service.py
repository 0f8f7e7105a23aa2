"""A retriever's backend stood in for on 127.0.0.1 (the real ones, a ColBERTv2 server, a Databricks index, cannot run
here), and the documents a RETRIEVER span lists.

`JsonService` answers every GET and POST with the JSON its subclass's `answer(method, path, body)` returns (`body`:
the POST's decoded JSON, None for a GET); `serving(service)` runs it on a thread for a fixture;
`listed_documents(span)` reads back `retrieval.documents.N.document.{id,score,content}`. Import as
`from retriever_service import ...` (tests/ is on sys.path through tests/conftest.py).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lmscope.telemetry import _semconv as semconv


class JsonService(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _JsonHandler)

    def answer(self, method: str, path: str, body: Any) -> Any:
        raise NotImplementedError


class _JsonHandler(BaseHTTPRequestHandler):
    server: JsonService

    def do_GET(self) -> None:
        self._send(self.server.answer("GET", self.path, None))

    def do_POST(self) -> None:
        self._send(self.server.answer("POST", self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))

    def _send(self, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def serving(service: JsonService) -> Iterator[JsonService]:
    """`service` answering on a thread of its own until the generator is closed (a fixture's `yield from`)."""
    thread = threading.Thread(target=service.serve_forever, daemon=True)
    thread.start()
    try:
        yield service
    finally:
        service.shutdown()
        service.server_close()


def listed_documents(span: Any) -> list[tuple[Any, Any, Any]]:
    """(id, score, content) of each document the span lists."""
    found, attributes = [], span.attributes
    while f"{semconv.RETRIEVAL_DOCUMENTS}.{len(found)}.{semconv.DOCUMENT_ID}" in attributes:
        prefix = f"{semconv.RETRIEVAL_DOCUMENTS}.{len(found)}."
        found.append((attributes[prefix + semconv.DOCUMENT_ID], attributes.get(prefix + semconv.DOCUMENT_SCORE),
                      attributes.get(prefix + semconv.DOCUMENT_CONTENT)))
    return found
