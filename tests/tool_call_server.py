"""An OpenAI-compatible chat server on 127.0.0.1 that answers every request with tool calls (the stand-in LM has no
tools): `with ToolCallServer() as server:` then `api_base=server.base_url`.

The answer is a line of text and two `get_weather` calls (Paris, Tokyo). Not streamed, one message; streamed, as
OpenAI streams it: the text, then per call a delta with its id and name, its arguments in two fragments, a
`tool_calls` finish, and the usage chunk when `stream_options.include_usage` asks. Its usage is a fixed bill.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

TEXT = "Let me look that up."
CALLS = (("call_paris", "get_weather", '{"city": "Paris"}'), ("call_tokyo", "get_weather", '{"city": "Tokyo"}'))
USAGE = {"prompt_tokens": 30, "completion_tokens": 21, "total_tokens": 51}


def _tool_calls() -> list[dict[str, Any]]:
    return [{"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
            for call_id, name, arguments in CALLS]


def _deltas() -> list[dict[str, Any]]:
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": TEXT}]
    for index, (call_id, name, arguments) in enumerate(CALLS):
        middle = len(arguments) // 2
        deltas.append({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                       "function": {"name": name, "arguments": ""}}]})
        deltas.extend({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}
                      for fragment in (arguments[:middle], arguments[middle:]))
    return deltas


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        envelope = {"id": "chatcmpl-tools", "created": int(time.time()), "model": "gpt-4o-mini"}
        if not body.get("stream"):
            message = {"role": "assistant", "content": TEXT, "tool_calls": _tool_calls()}
            return self._send("application/json", json.dumps({
                **envelope, "object": "chat.completion", "usage": USAGE,
                "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]}).encode())
        chunk = {**envelope, "object": "chat.completion.chunk"}
        events = [{**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]} for delta in _deltas()]
        events.append({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({**chunk, "choices": [], "usage": USAGE})
        self._send("text/event-stream", b"".join(b"data: %s\n\n" % json.dumps(event).encode() for event in events)
                   + b"data: [DONE]\n\n")

    def _send(self, content_type: str, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class ToolCallServer:
    def __init__(self) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> ToolCallServer:
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
