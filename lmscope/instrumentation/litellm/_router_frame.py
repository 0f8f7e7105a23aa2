"""The state of one `litellm.Router` call in flight: its span, roll-ups and the deployment attempts made under it.

A `ModuleFrame` (the frame DSPy module spans use), so that everything which rolls LM calls into a module rolls them
into the router span the same way: each attempt's LM span adds its call to the frame (`LiteLLMRuntime.finish`), and
the frame adds its totals into the enclosing DSPy module when it ends. On top of that it counts the attempts, keeps
the model of the one that answered, and knows when the router span may end: when the Router returned, or, for a
stream, once the attempt streaming the answer has ended too (its tokens arrive with the stream's end).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from opentelemetry.trace import Span

from ..dspy._frames import ModuleFrame


class RouterFrame(ModuleFrame):
    __slots__ = ("_done", "_lock", "_open", "_waiting", "attempts", "on_done", "served")

    def __init__(self, span: Span, parent: ModuleFrame | None, recording: bool) -> None:
        # The enclosing module's path, so that the attempts' LM calls name the same module as without the router.
        super().__init__(span, parent.path if parent is not None else "", None, parent, False, recording)
        self.attempts = 0
        self.served: str | None = None
        """The model of the last attempt that answered."""
        self.on_done: Callable[[], None] | None = None
        """Ends the router span; called once, by `returned` or by the last open attempt's end."""
        self._open = 0
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

    def returned(self, wait_for_attempts: bool) -> None:
        """The Router returned (or raised). With `wait_for_attempts` (it returned a stream), the span ends when the
        attempts still open have ended; otherwise now (a straggler that ends later is not counted, as for modules)."""
        with self._lock:
            self._waiting = True
            if wait_for_attempts:
                done = self._claim_if_idle()
            else:
                done, self._done = not self._done, True
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
