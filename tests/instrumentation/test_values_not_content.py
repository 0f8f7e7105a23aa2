"""Values that are not content (document ids, settings, request parameters, model names, the status, the
`lmscope.context` values) are recorded whatever `capture_content` says, so they are scrubbed and cut like content:
nothing secret, nothing longer than `max_content_chars`. Real DSPy and LiteLLM against the stand-in LM server."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import dspy
import litellm
import pytest
from content_spans import by_name as _by_name
from content_spans import everything_recorded as _everything_recorded
from content_spans import lm_span as _lm_span
from memory_spans import memory_provider
from openinference.instrumentation import get_attributes_from_context

import lmscope
from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._content import ContentPolicy, truncate
from lmscope.telemetry._exporters.langfuse import TRACE_TAGS, langfuse_attributes
from lmscope.telemetry._scrub import Scrubber

KEY = "sk-proj-" + "Q1w2E3r4T5y6" * 3
REDACTED = "[REDACTED]"
LIMIT = 500


def _longest(finished: Any) -> int:
    """The longest value recorded anywhere (a string array counted as its JSON): names, attributes, events, status."""
    sizes = [0]
    for span in finished:
        sizes.append(len(span.name))
        sizes.append(len(span.status.description or ""))
        values = [*span.attributes.values(), *(v for event in span.events for v in event.attributes.values())]
        sizes.extend(len(value if isinstance(value, str) else json.dumps(list(value)) if isinstance(value, tuple)
                         else str(value)) for value in values)
    return max(sizes)


class _Search(dspy.Retrieve):
    def forward(self, query: str, k: int | None = None) -> dspy.Prediction:
        return dspy.Prediction(passages=[
            {"id": "https://intranet.example.com/doc/1?token=docIdToken55", "text": "one", "score": 1.0},
            {"id": "postgres://svc:docIdPw66@db.example.com:5432/kb#row=7", "text": "two"},
            {"id": "w " * 20_000, "text": "three"},
            {"id": 7, "text": "four"}])


@pytest.mark.parametrize("capture", [True, False])
def test_document_ids_are_scrubbed_and_cut_and_a_long_one_is_left_out_when_outputs_are_hidden(traced, capture):
    spans = traced(ContentPolicy(capture_inputs=capture, capture_outputs=capture, max_chars=LIMIT))
    _Search()("q")

    (span,) = spans()
    ids = {key: value for key, value in span.attributes.items() if key.endswith(semconv.DOCUMENT_ID)}
    prefix = f"{semconv.RETRIEVAL_DOCUMENTS}."
    assert ids[f"{prefix}0.{semconv.DOCUMENT_ID}"] == f"https://intranet.example.com/doc/1?token={REDACTED}"
    assert ids[f"{prefix}1.{semconv.DOCUMENT_ID}"] == f"postgres://{REDACTED}@db.example.com:5432/kb#row=7"
    assert ids[f"{prefix}3.{semconv.DOCUMENT_ID}"] == "7"
    long_id = f"{prefix}2.{semconv.DOCUMENT_ID}"
    if capture:
        assert len(ids[long_id]) == LIMIT and ids[long_id].endswith(" chars]")
    else:  # a 40,000-character id is a text, not a key: content, not captured
        assert long_id not in ids
        assert not any(key.endswith(semconv.DOCUMENT_CONTENT) for key in span.attributes)
    assert span.attributes[semconv.SCRUBBED] is True
    assert "docIdToken55" not in _everything_recorded(spans()) and "docIdPw66" not in _everything_recorded(spans())


def test_string_settings_are_scrubbed_as_free_text_and_cut(traced, make_lm, unique):
    spans = traced(ContentPolicy(max_chars=LIMIT))
    dspy.configure(lm=make_lm())
    with dspy.context(note="word " * 20_000, conn="password=hunter2hunter2",
                      dsn="host=db user=bob password=dsnPwValue42"):
        dspy.Predict("question -> answer")(question=f"q {unique}")

    finished = spans()
    for span in (_by_name(finished, "predict"), _lm_span(finished)):
        settings = semconv.SETTINGS_PREFIX
        assert span.attributes[settings + "conn"] == f"password={REDACTED}"
        assert span.attributes[settings + "dsn"] == f"host=db user=bob password={REDACTED}"
        note = span.attributes[settings + "note"]
        assert len(note) == LIMIT and note.startswith("word word") and note.endswith(" chars]")
        assert span.attributes[semconv.SCRUBBED] is True
    recorded = _everything_recorded(finished)
    assert "hunter2hunter2" not in recorded and "dsnPwValue42" not in recorded


class _Fails(dspy.Module):
    def forward(self, question: str) -> None:
        raise RuntimeError("backend said " + "x y " * 5_000)


def test_the_status_description_fits_the_limit_with_the_type_before_the_message(traced):
    spans = traced(ContentPolicy(max_chars=LIMIT))
    with pytest.raises(RuntimeError):
        _Fails()(question="q")

    (span,) = spans()
    message = "backend said " + "x y " * 5_000
    assert span.status.description == truncate(f"RuntimeError: {message}", LIMIT)  # the marker counts from the whole
    assert len(span.status.description) == LIMIT and span.status.description.startswith("RuntimeError: backend said")
    (event,) = span.events
    assert event.attributes["exception.message"] == truncate(message, LIMIT)


def test_stop_sequences_and_invocation_parameters_are_scrubbed_and_cut_on_dspy(traced, make_lm, unique):
    spans = traced(ContentPolicy(max_chars=LIMIT))
    dspy.configure(lm=make_lm(cache=False, stop=[f"halt {KEY}", "stop " * 2_000], rollout_id="r " * 2_000,
                              temperature=1.0))
    dspy.Predict("question -> answer")(question=f"q {unique}")

    lm = _lm_span(spans())
    stop = lm.attributes[semconv.GEN_AI_REQUEST_STOP_SEQUENCES]
    assert len(stop) == 2 and stop[0] == f"halt {REDACTED}"
    assert stop[1].startswith("stop stop") and stop[1].endswith(" chars]")
    assert len(json.dumps(list(stop))) <= LIMIT
    parameters = lm.attributes[semconv.LLM_INVOCATION_PARAMETERS]
    assert len(parameters) == LIMIT and parameters.startswith('{"temperature": 1.0') and parameters.endswith(" chars]")
    assert f'"stop": ["halt {REDACTED}", "stop stop' in parameters
    assert lm.attributes[semconv.SCRUBBED] is True
    assert _longest(spans()) <= LIMIT
    assert KEY not in _everything_recorded(spans())


@pytest.fixture
def litellm_policy_spans(lm_server):
    """`instrument(policy)`: LiteLLM instrumented with that `ContentPolicy`; returns the finished-spans function."""
    from lmscope.instrumentation.litellm import LiteLLMInstrumentor

    instrumentor = LiteLLMInstrumentor()

    def instrument(policy: ContentPolicy) -> Any:
        provider, exporter = memory_provider()
        instrumentor.instrument(tracer=provider.get_tracer("test"), capture_content=policy)
        return exporter.get_finished_spans

    yield instrument
    instrumentor.uninstrument()


def test_stop_sequences_are_scrubbed_and_cut_on_litellm(litellm_policy_spans, lm_server, unique):
    spans = litellm_policy_spans(ContentPolicy(max_chars=LIMIT))
    litellm.completion(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": f"hi {unique}"}],
                       stop=[KEY, "stop " * 2_000, "end"], api_base=lm_server.base_url, api_key="sk-anything")

    (span,) = spans()
    stop = span.attributes[semconv.GEN_AI_REQUEST_STOP_SEQUENCES]
    assert stop[0] == REDACTED
    assert len(stop) == 2 and stop[1].startswith("stop stop")
    marker = re.search(r"…\[truncated (\d+) chars\]$", stop[1])
    assert marker is not None
    assert int(marker.group(1)) == len("stop " * 2_000) - marker.start() + len("end")  # the left-out "end" too
    assert len(json.dumps(list(stop))) <= LIMIT
    assert len(span.attributes[semconv.LLM_INVOCATION_PARAMETERS]) == LIMIT
    assert span.attributes[semconv.SCRUBBED] is True
    assert KEY not in _everything_recorded(spans())


def test_context_ids_tags_and_metadata_are_scrubbed_and_cut_also_for_langfuse_and_openinference(traced, make_lm,
                                                                                              unique):
    spans = traced(ContentPolicy(capture_inputs=False, capture_outputs=False, max_chars=LIMIT))
    dspy.configure(lm=make_lm())
    with lmscope.context(session_id="s " * 1_000, user_id=f"u:{KEY}", tags=[f"key {KEY}", "t " * 1_000],
                         metadata={"api_key": "plainMetaKey1", "note": "m " * 1_000}):
        seen = dict(get_attributes_from_context())
        dspy.Predict("question -> answer")(question=f"q {unique}")

    finished = spans()
    for span in finished:
        attributes = span.attributes
        assert len(attributes[semconv.SESSION_ID]) == LIMIT and attributes[semconv.SESSION_ID].endswith(" chars]")
        assert attributes[semconv.USER_ID] == f"u:{REDACTED}"
        tags = attributes[semconv.TAG_TAGS]
        assert tags[0] == f"key {REDACTED}" and tags[1].endswith(" chars]")
        assert len(json.dumps(list(tags))) <= LIMIT
        assert langfuse_attributes(attributes)[TRACE_TAGS] == tags
        assert len(attributes[semconv.METADATA]) == LIMIT and '"api_key": "[REDACTED]"' in attributes[semconv.METADATA]
        assert attributes[semconv.SCRUBBED] is True
    # What OpenInference's instrumentors would copy onto their spans: the same values, never the raw ones.
    assert seen[semconv.SESSION_ID] == finished[0].attributes[semconv.SESSION_ID]
    assert seen[semconv.USER_ID] == f"u:{REDACTED}"
    assert seen[semconv.TAG_TAGS] == list(finished[0].attributes[semconv.TAG_TAGS])
    assert seen[semconv.METADATA] == finished[0].attributes[semconv.METADATA]
    recorded = _everything_recorded(finished) + json.dumps(seen)
    assert KEY not in recorded and "plainMetaKey1" not in recorded
    assert _longest(finished) <= LIMIT


def test_openinference_sees_scrubbed_metadata_with_no_instrumentor_too():
    with lmscope.context(metadata={"api_key": "plainMetaKey1", "db_password": "plainMetaPw2", "team": "search"},
                         tags=[KEY]):
        seen = dict(get_attributes_from_context())
    assert json.loads(seen[semconv.METADATA]) == {"api_key": REDACTED, "db_password": REDACTED, "team": "search"}
    assert seen[semconv.TAG_TAGS] == [REDACTED]


def test_context_values_for_openinference_follow_the_instrumented_policy_until_uninstrumented(litellm_policy_spans):
    def seen() -> dict[str, Any]:
        with lmscope.context(metadata={"api_key": "plainMetaKey1"}):
            return json.loads(dict(get_attributes_from_context())[semconv.METADATA])

    from lmscope.instrumentation.litellm import LiteLLMInstrumentor

    litellm_policy_spans(ContentPolicy(scrubber=Scrubber(secrets=False)))  # scrub=False: the app's choice
    assert seen() == {"api_key": "plainMetaKey1"}
    LiteLLMInstrumentor().uninstrument()
    assert seen() == {"api_key": REDACTED}  # lmscope's default again, not the last instrumentation's


MODEL_WITH_KEY = f"openai/ft:gpt-4o-mini:acme:{KEY}"
SCRUBBED_MODEL = f"ft:gpt-4o-mini:acme:{REDACTED}"


def _model_attributes(span: Any) -> dict[str, Any]:
    return {key: span.attributes.get(key) for key in (semconv.GEN_AI_REQUEST_MODEL, semconv.LLM_MODEL_NAME,
                                                      semconv.GEN_AI_RESPONSE_MODEL)}


def test_a_key_in_the_model_name_is_scrubbed_on_dspy_spans_and_metrics(metered, make_lm, unique, metric_series):
    spans, reader = metered
    dspy.configure(lm=make_lm(model=MODEL_WITH_KEY, cache=False))
    dspy.Predict("question -> answer")(question=f"q {unique}")

    finished = spans()
    lm = _lm_span(finished)
    assert lm.name == f"chat {SCRUBBED_MODEL}"
    assert _model_attributes(lm) == dict.fromkeys(_model_attributes(lm), SCRUBBED_MODEL)  # the server echoes it
    assert lm.attributes[semconv.SCRUBBED] is True
    assert KEY not in _everything_recorded(finished) + str(metric_series(reader))
    models = {dict(series).get(semconv.GEN_AI_REQUEST_MODEL) for points in metric_series(reader).values()
              for series in points}
    assert SCRUBBED_MODEL in models


def test_a_key_in_the_model_name_is_scrubbed_on_litellm_spans(litellm_spans, lm_server, unique):
    litellm.completion(model=MODEL_WITH_KEY, messages=[{"role": "user", "content": f"hi {unique}"}],
                       api_base=lm_server.base_url, api_key="sk-anything")

    (span,) = litellm_spans()
    assert span.name == f"chat {SCRUBBED_MODEL}"
    assert _model_attributes(span) == dict.fromkeys(_model_attributes(span), SCRUBBED_MODEL)
    assert KEY not in _everything_recorded(litellm_spans())


def test_a_key_in_a_router_model_group_and_deployment_model_is_scrubbed(litellm_spans, lm_server, unique):
    group = f"grp-{unique}:{KEY}"
    router = litellm.Router(model_list=[{"model_name": group, "litellm_params": {
        "model": MODEL_WITH_KEY, "api_base": lm_server.base_url, "api_key": "sk-anything"}}])
    router.completion(model=group, messages=[{"role": "user", "content": f"hi {unique}"}])

    finished = litellm_spans()
    (routed,) = [span for span in finished if span.name.startswith(semconv.ROUTER_SPAN_NAME_PREFIX)]
    assert routed.name == f"{semconv.ROUTER_SPAN_NAME_PREFIX}grp-{unique}:{REDACTED}"
    assert routed.attributes[semconv.ROUTER_MODEL_GROUP] == f"grp-{unique}:{REDACTED}"
    assert routed.attributes[semconv.ROUTER_MODEL] == SCRUBBED_MODEL
    assert routed.attributes[semconv.SCRUBBED] is True
    assert _lm_span(finished).name == f"chat {SCRUBBED_MODEL}"
    assert KEY not in _everything_recorded(finished)


def test_a_raising_scrub_callback_never_puts_the_value_in_lmscopes_log(traced, make_lm, unique, caplog,
                                                                       swallow_internal_errors):
    def undecided(match: lmscope.ScrubMatch) -> Any:
        raise ValueError(f"cannot decide about {match.value!r} at {match.path}")

    spans = traced(ContentPolicy(scrubber=Scrubber(callback=undecided)))
    dspy.configure(lm=make_lm())
    with caplog.at_level(logging.WARNING, logger="lmscope"):
        answer = dspy.Predict("question, creds: dict -> answer")(question=f"q {unique}",
                                                                 creds={"password": "plainPw12345"})

    assert answer.answer  # the program is unaffected
    assert "plainPw12345" not in caplog.text and "plainPw12345" not in _everything_recorded(spans())
    (line,) = [record.getMessage() for record in caplog.records if "scrub_callback" in record.getMessage()]
    assert "undecided raised ValueError" in line  # what failed, and where, without its message
    assert "line 2" in line and "in undecided" in line  # its traceback: files, lines, source; no values


def test_context_values_keep_the_policy_while_one_of_two_instrumentors_is_still_instrumented(clean_env):
    """`lmscope.instrument()` gives DSPy's and LiteLLM's instrumentors one policy: uninstrumenting one of them put
    lmscope's default back while the other still traced with the app's (its `scrub_patterns`, its limit)."""
    from lmscope.instrumentation.litellm import LiteLLMInstrumentor

    def seen() -> dict[str, Any]:
        with lmscope.context(metadata={"account": "ACCT-12345678"}):
            return json.loads(dict(get_attributes_from_context())[semconv.METADATA])

    handle = lmscope.instrument(exporters="none", scrub_patterns=[r"ACCT-\d{8}"])
    try:
        assert seen() == {"account": REDACTED}
        LiteLLMInstrumentor().uninstrument()  # DSPy's instrumentor is still on, with the app's policy
        assert seen() == {"account": REDACTED}
    finally:
        handle.uninstrument()
    assert seen() == {"account": "ACCT-12345678"}  # lmscope's default knows no such pattern
