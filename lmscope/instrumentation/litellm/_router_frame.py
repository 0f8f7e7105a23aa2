"""The state of one `litellm.Router` call in flight: its span, roll-ups and the deployment attempts made under it.

A `ModuleFrame` (the frame DSPy module spans use), so that everything which rolls LM calls into a module rolls them
into the router span the same way: each attempt's LM span adds its call to the frame (`LiteLLMRuntime.finish`), and
the frame adds its totals into the enclosing DSPy module when it ends. On top of that it counts the attempts, keeps
the model of the one that answered, and knows when the router span may end: when the Router returned or raised, or,
when it returned a stream, once that stream has ended and so have the attempts streaming under it (their tokens
arrive with their streams' ends).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from opentelemetry.context import Context
from opentelemetry.trace import Span

from ..dspy._frames import ModuleFrame


class RouterFrame(ModuleFrame):
    __slots__ = ("_done", "_lock", "_open", "_waiting", "attempts", "context", "error", "on_done", "served",
                 "stream_closed", "unfinished")

    def __init__(self, span: Span, parent: ModuleFrame | None, recording: bool) -> None:
        # The enclosing module's path, so that the attempts' LM calls name the same module as without the router.
        super().__init__(span, parent.path if parent is not None else "", None, parent, False, recording)
        self.attempts = 0
        self.served: str | None = None
        """The model of the last attempt that answered."""
        self.error: BaseException | None = None
        """What the router call raised to the app: from the Router's call, or from iterating its stream."""
        self.context: Context | None = None
        """The context with the router span current (and this frame): the attempts' parent."""
        self.on_done: Callable[[], None] | None = None
        self.unfinished = False
        """The stream the Router returned ended before its end: the program closed it or dropped it."""
        self.stream_closed = False
        """The program closed that stream (else it dropped it). The Router's wrapper closes the attempt's stream
        either way (`StreamRecorder.closed_by_program`)."""
        """Ends the router span; called once, when the call returned and nothing under it is open."""
        self._open = 0
        """Attempts in flight, and the Router's own stream until it ends."""
        self._waiting = False
        self._done = False
        self._lock = threading.Lock()

    def attempt_started(self) -> None:
        with self._lock:
            self.attempts += 1
            self._open += 1

    def attempt_ended(self, answered_model: str | None) -> None:
        """An attempt's LM span ended (`answered_model`: its model if it answered, None if it failed)."""
        with self._lock:
            self._open -= 1
            if answered_model is not None:
                self.served = answered_model
            done = self._claim_if_idle()
        if done:
            self._finish()

    def returned(self, error: BaseException | None, stream: bool) -> None:
        """The Router returned (`stream`: a stream, which `stream_ended` reports the end of) or raised `error`.
        Without a stream the span ends now: an attempt that ends later is not counted, as for a module's."""
        with self._lock:
            self.error = error
            self._waiting = True
            if stream:
                self._open += 1
                done = False
            else:
                done, self._done = not self._done, True
        if done:
            self._finish()

    def stream_ended(self, error: BaseException | None, unfinished: bool, closed: bool) -> None:
        """The stream the Router returned ended (`error`: what iterating it raised to the app; `unfinished`: before
        its end, `closed` by the program rather than dropped)."""
        with self._lock:
            self._open -= 1
            self.error, self.unfinished, self.stream_closed = error, unfinished, closed
            done = self._claim_if_idle()
        if done:
            self._finish()

    def _claim_if_idle(self) -> bool:
        if self._waiting and self._open <= 0 and not self._done:
            self._done = True
            return True
        return False

    def _finish(self) -> None:
        if self.on_done is not None:
            self.on_done()
