"""lmscope's stand-in LM: an OpenAI-compatible chat server on 127.0.0.1, the only fake part of the project.

No LM provider is reachable from tests or the offline demo, so DSPy and LiteLLM talk real HTTP to this
server instead. Everything a tracer measures is honest: prompt and completion tokens come from tiktoken
(`o200k_base`, see `_lm_server_tokens` for the formula), `cached_tokens` from a simulation of provider
prefix caching (`_lm_server_prefix_cache`), and answers follow the adapter format DSPy asked for
(`_lm_server_answers`).

    with StandInLM() as server:
        lm = dspy.LM("openai/gpt-4o-mini", api_base=server.base_url, api_key="sk-anything")

Routes: POST /v1/chat/completions (JSON or `stream: true` SSE; `n` choices, each chunk of a stream naming its choice's
`index`; an answer longer than `max_completion_tokens` / `max_tokens` is cut there, finish_reason "length", as a
provider stops), POST /v1/responses (the Responses API, JSON or SSE:
`_lm_server_responses`), POST /v1/completions (legacy text completions: `_lm_server_text`), POST /v1/embeddings
(`_lm_server_embeddings`), GET /v1/models. `failures` makes a model's
calls fail, `transient_failures` the next few of them (a provider's passing outage, for retries), `context_windows`
refuses a model's prompts longer than its window (OpenAI's `context_length_exceeded`, for fallbacks). Request headers
(and so API keys) are never logged or stored, and the server writes nothing to stderr.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, overload

from ._lm_server_answers import compose_reply
from ._lm_server_embeddings import EMBEDDINGS_PATH, BadEmbeddingRequest, Embeddings, embed
from ._lm_server_prefix_cache import PrefixCache
from ._lm_server_prompt import read_prompt
from ._lm_server_responses import (
    RESPONSES_PATH,
    BadResponsesRequest,
    ResponsesRequest,
    read_responses_request,
    response_body,
    response_events,
)
from ._lm_server_text import COMPLETIONS_PATH, BadTextRequest, TextCompletion, read_prompts
from ._lm_server_tokens import count_prompt_tokens, count_tokens, decode, encode, load_encoding, prompt_token_ids
from ._lm_server_wire import Completion, error_body, models_body

__all__ = ["StandInLM", "count_prompt_tokens", "count_tokens"]

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
DEFAULT_MODELS = ("gpt-4o-mini",)


class BadRequest(ValueError):
    """The request body is not a chat-completion request; answered with 400 (`code`: the error body's, as OpenAI's)."""

    def __init__(self, message: str, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.param = code, param


class _Count:
    """A count the server keeps in `_<name>`, read under its lock (one line per counter in the class body)."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc
        self.field = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.field = "_" + name

    @overload
    def __get__(self, stand_in: None, owner: type) -> _Count: ...
    @overload
    def __get__(self, stand_in: StandInLM, owner: type) -> int: ...
    def __get__(self, stand_in: StandInLM | None, owner: type) -> _Count | int:
        if stand_in is None:
            return self
        with stand_in._lock:
            count: int = getattr(stand_in, self.field)
            return count


class StandInLM:
    """An OpenAI-compatible chat server in a daemon thread. `model_answers` pins reply values per output
    field name (`{"answer": "42"}`); key `content` pins the reply to a prompt without DSPy structure."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, cache_block_tokens: int = 32,
                 model_answers: Mapping[str, str] | None = None) -> None:
        load_encoding()  # fail here, with the pip command, rather than inside a request thread
        self.host = host
        self.port = port
        self.model_answers: dict[str, str] = dict(model_answers or {})
        self._prefix_cache = PrefixCache(cache_block_tokens)
        self._lock = threading.Lock()
        self._requests = 0
        self._billed = (0, 0)
        self._embedding_requests = 0
        self._embedding_tokens = 0
        self._responses_requests = 0
        self._text_requests = 0
        self._failed_requests = 0
        self.failures: dict[str, tuple[int, str]] = {}
        """model -> (HTTP status, error message): requests for that model are answered with that error, as a
        provider refusing a call (tests plant what a provider's error echoes: a key, a URL with `?key=`)."""
        self.transient_failures: dict[str, list[tuple[int, str]]] = {}
        """model -> errors for its next requests, one each, in order (then it answers again): a provider's passing
        outage, what a retry is for. Checked after `failures`."""
        self.context_windows: dict[str, int] = {}
        """model -> the most prompt tokens it takes: a longer chat prompt is refused with 400 and OpenAI's
        `context_length_exceeded` error (what LiteLLM raises `ContextWindowExceededError` for), billed nothing."""
        self.recorded_bodies: list[bytes] | None = None
        """Set to a list to keep the raw body of every POST from then on (tests compare what the LM received)."""
        self._models_seen: set[str] = set(DEFAULT_MODELS)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def start(self) -> StandInLM:
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer((self.host, self.port), _Handler, self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"lmscope-stand-in-lm:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> StandInLM:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # what callers read

    @property
    def received(self) -> list[Any] | None:
        """The bodies of `recorded_bodies`, parsed (None when not recording): what the LM was asked."""
        recorded = self.recorded_bodies
        return None if recorded is None else [json.loads(body) for body in recorded]

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("StandInLM is not running: call start() or use it as a context manager")
        return f"http://{self.host}:{self.port}/v1"

    requests = _Count("Chat-completion requests answered so far (including streamed ones).")
    embedding_requests = _Count("Embeddings requests answered so far.")
    embedding_tokens = _Count("Input tokens billed for embeddings so far (the sum of every answer's "
                              "`usage.prompt_tokens`).")
    responses_requests = _Count("Responses API requests answered so far (including streamed ones).")
    text_requests = _Count("Legacy text-completion requests (/v1/completions) answered so far.")
    failed_requests = _Count("Requests answered with an error of `failures` or `transient_failures` so far, on any "
                             "route, and chat prompts refused for `context_windows`.")

    @property
    def billed_chat_tokens(self) -> tuple[int, int]:
        """(prompt, completion) tokens of every chat completion, text completion and Responses request answered so far,
        as their `usage` said (all choices): what a tracer's token counts must add up to."""
        with self._lock:
            return self._billed

    def reset_prefix_cache(self) -> None:
        """Forget every remembered prompt: the next prompts report cached_tokens=0."""
        self._prefix_cache.clear()

    def model_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._models_seen)

    # the one thing the server does

    def complete(self, body: Any) -> Completion:
        """Answer a parsed /v1/chat/completions body; raises BadRequest when it is not one."""
        if not isinstance(body, dict):
            raise BadRequest("The request body must be a JSON object.")
        model, messages, choices = body.get("model"), body.get("messages"), _choice_count(body)
        if not isinstance(model, str) or not model:
            raise BadRequest("You must provide a model parameter.")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise BadRequest("'messages' must be a non-empty array of message objects.")
        self._check_context_window(model, messages)
        completion = self._answer(body, model, messages, choices, _token_limit(body))
        with self._lock:
            # Counted before the reply is written, so a client that got its answer sees itself counted.
            self._requests += 1
        return completion

    def complete_text(self, body: Any) -> TextCompletion:
        """Answer a parsed /v1/completions body; raises BadRequest when it is not one."""
        try:
            prompts = read_prompts(body)
        except BadTextRequest as exc:
            raise BadRequest(str(exc)) from exc
        choices, limit = _choice_count(body), _token_limit(body)
        answers = tuple(self._answer({"messages": [{"role": "user", "content": prompt}]}, body["model"], [],
                                     choices, limit, prompt_ids=encode(prompt)) for prompt in prompts)
        with self._lock:
            self._text_requests += 1
        return TextCompletion(answers)

    def respond(self, body: Any) -> ResponsesRequest:
        """Read a parsed /v1/responses body; raises BadRequest when it is not one the stand-in answers."""
        try:
            return read_responses_request(body)
        except BadResponsesRequest as exc:
            raise BadRequest(str(exc)) from exc

    def answer_responses(self, request: ResponsesRequest) -> Completion:
        """Answer a Responses request by the chat rules (`_lm_server_responses`)."""
        completion = self._answer(request.chat_body(), request.model, request.messages, 1)
        with self._lock:
            self._responses_requests += 1
        return completion

    def _answer(self, body: Any, model: str, messages: list[Any], choices: int,
                limit: int | None = None, prompt_ids: list[int] | None = None) -> Completion:
        """The reply to a chat `body` (its `messages` billed with chat framing), or to a text prompt's `prompt_ids`."""
        text = compose_reply(read_prompt(body), self.model_answers)
        tokens, finish_reason = encode(text), "stop"
        if limit is not None and len(tokens) > limit:  # a provider stops generating there, and says why
            tokens, finish_reason = tokens[:limit], "length"
            text = decode(tokens)
        if prompt_ids is None:
            prompt_ids = prompt_token_ids(messages)
        cached = self._prefix_cache.lookup_and_remember(model, prompt_ids)
        completion = Completion(model=model, text=text, choices=choices, prompt_tokens=len(prompt_ids),
                                cached_tokens=cached, completion_tokens=len(tokens), finish_reason=finish_reason)
        usage = completion.usage()
        with self._lock:
            self._billed = (self._billed[0] + usage["prompt_tokens"], self._billed[1] + usage["completion_tokens"])
            self._models_seen.add(model)
        return completion

    def _check_context_window(self, model: str, messages: list[Any]) -> None:
        """Raise BadRequest, as OpenAI words it, when the prompt is longer than the model's `context_windows` entry."""
        window = self.context_windows.get(model)
        if window is None:
            return
        prompt_tokens = len(prompt_token_ids(messages))
        if prompt_tokens > window:
            with self._lock:
                self._failed_requests += 1
            raise BadRequest(f"This model's maximum context length is {window} tokens. However, your messages "
                             f"resulted in {prompt_tokens} tokens. Please reduce the length of the messages.",
                             code="context_length_exceeded", param="messages")

    def planted_failure(self, body: Any) -> tuple[int, str] | None:
        """The error `failures` or `transient_failures` plant for this request, counted; None to answer it."""
        model = str(body.get("model")) if isinstance(body, dict) else None
        if model is None:
            return None
        with self._lock:
            failure = self.failures.get(model)
            queued = self.transient_failures.get(model)
            if failure is None and queued:
                failure = queued.pop(0)
            if failure is not None:
                self._failed_requests += 1
        return failure

    def embed(self, body: Any) -> Embeddings:
        """Answer a parsed /v1/embeddings body; raises BadRequest when it is not one."""
        try:
            embeddings = embed(body)
        except BadEmbeddingRequest as exc:
            raise BadRequest(str(exc)) from exc
        with self._lock:
            self._embedding_requests += 1
            self._embedding_tokens += embeddings.prompt_tokens
            self._models_seen.add(embeddings.model)
        return embeddings


def _choice_count(body: dict[str, Any]) -> int:
    """The request's `n` (1 when absent or null); raises BadRequest for one that is not an integer from 1 to 128."""
    choices = body.get("n")
    if choices is None:
        return 1
    if type(choices) is not int or not 1 <= choices <= 128:
        raise BadRequest("'n' must be an integer from 1 to 128.")
    return choices


def _token_limit(body: dict[str, Any]) -> int | None:
    """The most tokens a chat request lets each choice generate: `max_completion_tokens`, else the older
    `max_tokens` (as OpenAI reads them); None for no limit. Raises BadRequest for one that is not a positive integer."""
    name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    limit = body.get(name)
    if limit is not None and (type(limit) is not int or limit < 1):
        raise BadRequest(f"'{name}' must be an integer of at least 1.")
    return limit


def _includes_usage(body: dict[str, Any]) -> bool:
    """`stream_options.include_usage`: a stream ends with a chunk carrying the usage."""
    return bool((body.get("stream_options") or {}).get("include_usage"))


_FAILURE_CODES = {401: "invalid_api_key", 429: "rate_limit_exceeded"}
"""The `error.code` OpenAI sends with a planted failure's status (none for a 5xx): a client that reads the code (DSPy's
native engine) takes a 500 or a 429 for the passing outage it is, not for a bad key."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # an idle keep-alive connection must not block interpreter exit

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], stand_in: StandInLM):
        self.stand_in = stand_in
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client hanging up mid-reply is routine; stay quiet on stderr


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: DSPy and LiteLLM reuse connections
    disable_nagle_algorithm = True  # TCP_NODELAY; otherwise Nagle + delayed ACK add ~40 ms per call
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no per-request lines, and nothing from the request (headers hold API keys) is ever written

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == MODELS_PATH:
            self._send_json(200, models_body(self.server.stand_in.model_ids()))
        else:
            self._send_not_found()

    def do_POST(self) -> None:
        raw = self._read_body()  # always drain the body, so the connection stays usable
        recorded = self.server.stand_in.recorded_bodies
        if recorded is not None:
            recorded.append(raw)
        path = self.path.split("?", 1)[0]
        if path not in (CHAT_PATH, EMBEDDINGS_PATH, RESPONSES_PATH, COMPLETIONS_PATH):
            return self._send_not_found()
        stand_in = self.server.stand_in
        try:
            body = json.loads(raw or b"null")
            failure = stand_in.planted_failure(body)
            if failure is not None:
                return self._send_json(failure[0], error_body(failure[1], code=_FAILURE_CODES.get(failure[0])))
            if path == EMBEDDINGS_PATH:
                return self._send_json(200, stand_in.embed(body).body())
            if path == COMPLETIONS_PATH:
                text = stand_in.complete_text(body)
                if body.get("stream") is True:
                    return self._send_events([*text.stream_chunks(_includes_usage(body)), "[DONE]"], with_names=False)
                return self._send_json(200, text.body())
            if path == RESPONSES_PATH:
                request = stand_in.respond(body)
                completion = stand_in.answer_responses(request)
            else:
                completion = stand_in.complete(body)
        except BadRequest as exc:
            return self._send_json(400, error_body(str(exc), code=exc.code, param=exc.param))
        except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError
            return self._send_json(400, error_body(f"We could not parse the JSON body of your request: {exc}"))
        except Exception as exc:  # noqa: BLE001 - a bug here must reach the client as a 500, not as a dropped connection
            return self._send_json(500, error_body(f"stand-in LM failed: {exc!r}", error_type="server_error"))
        if path == RESPONSES_PATH:
            if body.get("stream") is True:
                self._send_events(list(response_events(completion, request)), with_names=True)
            else:
                self._send_json(200, response_body(completion, request))
        elif body.get("stream") is True:
            self._send_stream(completion, _includes_usage(body))
        else:
            self._send_json(200, completion.body())

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send_not_found(self) -> None:
        self._send_json(404, error_body(f"Unknown request URL: {self.command} {self.path}.", code="unknown_url"))

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, completion: Completion, include_usage: bool) -> None:
        self._send_events([*completion.stream_chunks(include_usage), "[DONE]"], with_names=False)

    def _send_events(self, events: list[Any], with_names: bool) -> None:
        """Server-sent events, one `data:` line each (and an `event:` line with its type for the Responses API,
        as OpenAI sends them); a string event is sent as is (`[DONE]`)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")  # length unknown up front; keeps keep-alive working
        self.end_headers()
        for event in events:
            named = f"event: {event['type']}\n" if with_names and isinstance(event, dict) else ""
            payload = event if isinstance(event, str) else json.dumps(event)
            data = f"{named}data: {payload}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
