"""A streamed Responses API call (`responses(stream=True)`): what its events tell the stream's span.

LiteLLM's iterators yield OpenAI's events. The terminal one (`response.completed`, `response.incomplete`,
`response.failed`) carries the whole response with the provider's usage, which LiteLLM has priced by then
(`_hidden_params["response_cost"]`, docs/litellm-internals.md §5): the span is read from it as from a response that
was not streamed. A stream that ends before it (closed or dropped early) has only the `response.output_text.delta`
texts it delivered: tokens are then LiteLLM's count (`lmscope.usage.estimated=true`), as for a chat stream without a
usage chunk.
"""

from __future__ import annotations

from typing import Any

from ...telemetry._lm_call import LMCall
from .._token_counts import get
from ._responses import responses_answers, responses_finish_reasons, responses_messages
from ._results import call_from_response
from ._spans import litellm_price
from ._stream_tokens import estimate_tokens
from ._streams import StreamRecorder

_TERMINAL_EVENTS = ("response.completed", "response.incomplete", "response.failed")
_TEXT_DELTA = "response.output_text.delta"


def _event_type(event: Any) -> str:
    kind = get(event, "type")
    return str(getattr(kind, "value", kind))  # LiteLLM's events carry a str Enum


class ResponsesStreamRecorder(StreamRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.final: Any = None
        """The terminal event's response, once it has come."""

    def read(self, chunk: Any) -> None:
        kind = _event_type(chunk)
        if kind == _TEXT_DELTA:
            delta = get(chunk, "delta")
            if isinstance(delta, str):
                self.answers.add_text(0, delta)
        elif kind in _TERMINAL_EVENTS:
            self.final = get(chunk, "response")

    def result(self) -> tuple[LMCall, list[Any], dict[str, Any]]:
        frame, final = self.frame, self.final
        call = self.runtime.new_call(frame)
        if final is not None:
            call_from_response(final, call)
            call.finish_reasons = responses_finish_reasons(final)
            if call.cost_usd is None:  # LiteLLM prices the terminal response; if it could not, its table as for chat
                call.cost_usd = litellm_price(frame, call.input_tokens, call.output_tokens)
            return self._priced(call), responses_answers(final), {}
        texts = self.answers.answers()
        call.input_tokens, call.output_tokens = estimate_tokens(frame, responses_messages(frame.kwargs), texts)
        call.cost_usd = litellm_price(frame, call.input_tokens, call.output_tokens)
        call.usage_estimated = True
        return self._priced(call), texts, {}

    @staticmethod
    def _priced(call: LMCall) -> LMCall:
        call.cost_source = "litellm" if call.cost_usd is not None else None
        return call
