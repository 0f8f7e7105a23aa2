"""The MLflow experiment lookup never carries the tracking token to another host.

The lookup sends MLFLOW_TRACKING_TOKEN (or the Basic login) as an Authorization header; urllib follows a 3xx
by default and keeps that header, whatever host the Location names. Checked with two local HTTP servers.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lmscope.telemetry._exporters.mlflow_experiment import ExperimentUnavailable, resolve_experiment_id


def test_a_redirect_is_not_followed_and_keeps_the_token_home() -> None:
    """urllib follows a 302 and resends the Authorization header to whatever host it names, so a redirecting (or
    hijacked) tracking server would hand the MLflow token to another server. The lookup must stop at the 3xx:
    the second server never hears from us, and the experiment is reported unavailable (retried at the next
    export) with a reason saying why. Fails if the redirect is followed: the second server then answers with
    an experiment id and records the token."""
    seen_elsewhere: list[str | None] = []

    class Elsewhere(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen_elsewhere.append(self.headers.get("Authorization"))
            body = json.dumps({"experiment": {"experiment_id": "7", "lifecycle_stage": "active"}}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    class Redirecting(Elsewhere):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{elsewhere.server_address[1]}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()

    elsewhere = ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)
    tracking = ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    for server in (elsewhere, tracking):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ExperimentUnavailable, match="HTTP 302 redirect not followed"):
            resolve_experiment_id(f"http://127.0.0.1:{tracking.server_address[1]}",
                                  {"Authorization": "Bearer mlflow-SECRET"}, "lmscope-redirected")
    finally:
        for server in (elsewhere, tracking):
            server.shutdown()
            server.server_close()
    assert seen_elsewhere == []
