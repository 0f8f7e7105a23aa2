"""Nothing secret on spans: credentials in captured content are redacted before any attribute is stored, on real
DSPy runs against the stand-in LM server (both engines), while the program and the LM see exactly what they did."""

from __future__ import annotations

import dataclasses
import enum
import json
from types import MappingProxyType
from typing import Any

import dspy
import pytest
from content_spans import by_name as _by_name
from content_spans import everything_recorded as _everything_recorded
from content_spans import lm_span as _lm_span
from dspy_release import engine_options, needs_dspy

import lmscope
from lmscope.telemetry import _semconv as semconv
from lmscope.telemetry._content import ContentPolicy
from lmscope.telemetry._scrub import Scrubber

OPENAI_KEY = "sk-proj-" + "Q1w2E3r4T5y6" * 3
DB_URL = "postgres://bob:hunter2@db.example.com:5432/app"
REDACTED = "[REDACTED]"


def _sent_text(lm_server: Any) -> str:
    return json.dumps(lm_server.received)


def test_value_under_a_credential_key_is_redacted_and_the_callers_dict_is_untouched(traced, make_lm, lm_server,
                                                                                        unique):
    spans = traced(ContentPolicy())
    dspy.configure(lm=make_lm(cache=False))
    config = {"api_key": OPENAI_KEY, "temperature": 0.5}
    question = f"What is the capital of France? {unique}"
    dspy.Predict("question -> answer")(question=question, config=config)

    assert config == {"api_key": OPENAI_KEY, "temperature": 0.5}  # a copy was scrubbed, not the caller's dict
    finished = spans()
    predict = _by_name(finished, "predict")
    assert predict.attributes[semconv.INPUT_VALUE] == json.dumps(
        {"question": question, "config": {"api_key": REDACTED, "temperature": 0.5}}, ensure_ascii=False)
    assert predict.attributes[semconv.SCRUBBED] is True
    assert semconv.SCRUBBED not in _lm_span(finished).attributes  # its messages hold no credential
    assert OPENAI_KEY not in _everything_recorded(finished)
    (body,) = lm_server.received
    assert body["temperature"] == 0.5 and question in _sent_text(lm_server)


def test_credential_shapes_are_redacted_on_module_and_lm_spans_but_reach_the_lm(traced, make_lm, lm_server, unique):
    spans = traced(ContentPolicy())
    dspy.configure(lm=make_lm(cache=False))
    question = f"Why does {DB_URL} reject my key {OPENAI_KEY}? {unique}"
    dspy.Predict("question -> answer")(question=question)

    finished = spans()
    scrubbed_question = f"Why does postgres://{REDACTED}@db.example.com:5432/app reject my key {REDACTED}? {unique}"
    predict, lm = _by_name(finished, "predict"), _lm_span(finished)
    assert predict.attributes[semconv.INPUT_VALUE] == json.dumps({"question": scrubbed_question}, ensure_ascii=False)
    messages = json.loads(lm.attributes[semconv.INPUT_VALUE])
    assert scrubbed_question in messages[-1]["content"]
    user = f"{semconv.LLM_INPUT_MESSAGES}.1.message.content"  # the structured copies are scrubbed too
    assert scrubbed_question in lm.attributes[user]
    assert scrubbed_question in json.loads(lm.attributes[semconv.GEN_AI_INPUT_MESSAGES])[0]["parts"][0]["content"]
    assert predict.attributes[semconv.SCRUBBED] is True and lm.attributes[semconv.SCRUBBED] is True
    recorded = _everything_recorded(finished)
    assert OPENAI_KEY not in recorded and "hunter2" not in recorded
    # What the LM received is what the program sent: the credential text is there, verbatim.
    (body,) = lm_server.received
    assert question in body["messages"][-1]["content"]



@pytest.mark.parametrize("member", ['"password":"hunter2-compact"', '"password": "hunter2-dumped"'])
def test_a_credential_in_json_written_into_text_is_redacted_compact_or_not(traced, make_lm, lm_server, unique, member):
    """JSON a user pasted into a question, compact (`":"`, as `json.dumps(separators=...)` and JavaScript write it)
    or as `json.dumps` writes it: the member's value is redacted on every span, and reaches the LM unchanged."""
    spans = traced(ContentPolicy())
    dspy.configure(lm=make_lm(cache=False))
    question = f'Why is {{"user":"bob",{member}}} refused? {unique}'
    dspy.Predict("question -> answer")(question=question)

    finished = spans()
    secret = member.split('"')[-2]
    scrubbed_question = question.replace(secret, REDACTED)
    predict, lm = _by_name(finished, "predict"), _lm_span(finished)
    assert predict.attributes[semconv.INPUT_VALUE] == json.dumps({"question": scrubbed_question}, ensure_ascii=False)
    assert scrubbed_question in lm.attributes[f"{semconv.LLM_INPUT_MESSAGES}.1.message.content"]
    assert predict.attributes[semconv.SCRUBBED] is True and lm.attributes[semconv.SCRUBBED] is True
    assert secret not in _everything_recorded(finished)
    (body,) = lm_server.received
    assert question in body["messages"][-1]["content"]

def test_scrub_off_records_content_verbatim(traced, make_lm, unique):
    spans = traced(ContentPolicy(scrubber=Scrubber(secrets=False)))
    dspy.configure(lm=make_lm())
    question = f"My key is {OPENAI_KEY}. {unique}"
    dspy.Predict("question -> answer")(question=question, config={"api_key": OPENAI_KEY})

    finished = spans()
    predict = _by_name(finished, "predict")
    assert predict.attributes[semconv.INPUT_VALUE] == json.dumps(
        {"question": question, "config": {"api_key": OPENAI_KEY}}, ensure_ascii=False)
    assert all(semconv.SCRUBBED not in span.attributes for span in finished)


def test_extra_patterns_and_a_callback_that_keeps_values(traced, make_lm, unique):
    def keep_session_ids(match: lmscope.ScrubMatch) -> Any:
        return match.value if match.path[-1] == "session_id" else None

    spans = traced(ContentPolicy(scrubber=Scrubber(patterns=[r"ACCT-\d{6}"], callback=keep_session_ids)))
    dspy.configure(lm=make_lm())
    dspy.Predict("question, session_id -> answer")(question=f"Balance of ACCT-123456? {unique}", session_id="s-42")

    predict = _by_name(spans(), "predict")
    assert predict.attributes[semconv.INPUT_VALUE] == json.dumps(
        {"question": f"Balance of {REDACTED}? {unique}", "session_id": "s-42"}, ensure_ascii=False)
    assert predict.attributes[semconv.SCRUBBED] is True


def test_retrieved_documents_and_context_metadata_are_scrubbed(traced, make_lm, unique):
    from lmscope._demo import build_program

    spans = traced(ContentPolicy())
    dspy.configure(lm=make_lm())
    passages = [f"Paris is the capital of France. {unique}", f"Ops note: deploy with token {OPENAI_KEY}"]
    rag = build_program(retrieve=lambda query: passages)
    with lmscope.context(session_id="s-1", metadata={"team": "search", "api_key": OPENAI_KEY}):
        rag(question=f"What is the capital of France? {unique}")

    finished = spans()
    retrieve = _by_name(finished, "rag.retrieve")
    documents = f"{semconv.RETRIEVAL_DOCUMENTS}.{{}}.{semconv.DOCUMENT_CONTENT}"
    assert retrieve.attributes[documents.format(0)] == passages[0]
    assert retrieve.attributes[documents.format(1)] == f"Ops note: deploy with token {REDACTED}"
    assert retrieve.attributes[semconv.SCRUBBED] is True
    for span in finished:
        assert span.attributes[semconv.METADATA] == json.dumps({"api_key": REDACTED, "team": "search"})
        assert span.attributes[semconv.SESSION_ID] == "s-1"
        assert span.attributes[semconv.SCRUBBED] is True
    assert OPENAI_KEY not in _everything_recorded(finished)


@needs_dspy((3, 4), "the fallback behaviour these tests pin (JSONAdapter's retry ending in AdapterParseError)")
def test_adapter_fallback_and_parse_error_messages_are_scrubbed(traced, engine, unique):
    """The LM answers with a key where an int belongs: ChatAdapter's parse error (which quotes the answer) becomes
    the fallback event's message, and JSONAdapter's the exception's. The program still gets DSPy's own error."""
    from dspy.utils.exceptions import AdapterParseError

    from lmscope._lm_server import StandInLM

    spans = traced(ContentPolicy())
    with StandInLM(model_answers={"count": f"not a number, use {OPENAI_KEY}"}) as server:
        options = {"api_base": server.base_url, "api_key": "sk-x", "cache": False}
        dspy.configure(lm=dspy.LM("openai/gpt-4o-mini", **options, **engine_options(engine)))
        with pytest.raises(AdapterParseError) as caught:
            dspy.Predict("question -> count: int")(question=f"How many? {unique}")

    assert "not a number, use sk-pro" in str(caught.value)
    finished = spans()
    predict = _by_name(finished, "predict")
    (fallback,) = [event for event in predict.events if event.name == semconv.ADAPTER_EVENT_FALLBACK]
    message = fallback.attributes["message"]
    assert message.startswith(f"Failed to parse field count with value not a number, use {REDACTED} from the LM")
    assert len(message) <= 500 and "input_value='not a number, use [REDACTED]'" in message
    assert predict.attributes[semconv.SCRUBBED] is True
    recorded = _everything_recorded(finished)
    assert "Q1w2E3r4T5y6" not in recorded and "1w2E3r4T5y6" not in recorded


class _Connect(dspy.Module):
    def forward(self, url: str) -> Any:
        raise ConnectionError(f"cannot reach {url}: password=hunter2 rejected")


def test_exception_message_traceback_and_status_are_scrubbed(traced):
    spans = traced(ContentPolicy())
    with pytest.raises(ConnectionError) as caught:
        _Connect()(url=DB_URL)

    assert str(caught.value) == f"cannot reach {DB_URL}: password=hunter2 rejected"  # the program's own, unchanged
    (span,) = spans()
    (event,) = span.events
    expected = f"cannot reach postgres://{REDACTED}@db.example.com:5432/app: password={REDACTED} rejected"
    assert event.attributes["exception.message"] == expected
    assert event.attributes["exception.stacktrace"].endswith(f"ConnectionError: {expected}\n")
    assert span.status.description == f"ConnectionError: {expected}"
    assert span.attributes[semconv.SCRUBBED] is True
    assert "hunter2" not in _everything_recorded(spans())


def test_a_password_in_the_lm_endpoint_never_reaches_a_span(traced, engine, unique):
    """`api_base` with basic-auth credentials and nothing listening: DSPy's native engine names the host it tried
    as `alice:<password>@127.0.0.1:<port>`, with no scheme in front; error text on every span is scrubbed anyway,
    content capture or not. The program's own exception keeps what its LM client said."""
    import socket

    with socket.socket() as probe:  # a port nothing listens on: bound once, then released
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    spans = traced(ContentPolicy.capturing(False))
    lm = dspy.LM("openai/gpt-4o-mini", api_base=f"http://alice:S3cretPassw0rd@127.0.0.1:{port}/v1", api_key="sk-x",
                 cache=False, num_retries=0, **engine_options(engine))
    with pytest.raises(Exception):  # noqa: B017 - whichever error the engine's client raises is the program's
        dspy.Predict("question -> answer")(question=f"Anyone there? {unique}", lm=lm)

    finished = spans()
    assert {span.status.status_code.name for span in finished} == {"ERROR"}
    assert "S3cretPassw0rd" not in _everything_recorded(finished)


GITHUB_TOKEN = "ghp_" + "A1b2C3d4E5" * 4


def fetch_issues(repo: str, api_key: str = OPENAI_KEY) -> str:
    return f"{repo}: 3 open"


fetch_issues.__doc__ = f"List a repository's open issues (token {GITHUB_TOKEN}). " + "Mind the rate limit. " * 300


def test_tool_description_and_schema_are_scrubbed_and_cut_content_capture_or_not(traced):
    """A tool's description and argument schema are recorded with content capture off (they describe the step, not
    the data), so they are scrubbed and cut like content: the docstring quotes a token and runs to 6,000 characters,
    and a default argument is a key."""
    spans = traced(ContentPolicy(capture_inputs=False, capture_outputs=False, max_chars=1000))
    tool = dspy.Tool(fetch_issues)
    assert tool(repo="stanfordnlp/dspy") == "stanfordnlp/dspy: 3 open"

    (step,) = spans()
    description = step.attributes[semconv.TOOL_DESCRIPTION]
    assert description == step.attributes[semconv.GEN_AI_TOOL_DESCRIPTION]
    assert description.startswith(f"List a repository's open issues (token {REDACTED}). Mind the rate limit.")
    assert len(description) == 1000 and description.endswith(" chars]")
    parameters = json.loads(step.attributes[semconv.TOOL_PARAMETERS])
    # The argument is named like a credential: its whole entry goes, as any value under such a key does.
    assert parameters["properties"] == {"repo": {"type": "string"}, "api_key": REDACTED}
    assert step.attributes[semconv.SCRUBBED] is True
    recorded = _everything_recorded(spans())
    assert OPENAI_KEY not in recorded and GITHUB_TOKEN not in recorded


def test_a_wide_signature_is_cut_to_the_content_limit(traced, make_lm, unique):
    spans = traced(ContentPolicy(max_chars=200))
    dspy.configure(lm=make_lm(cache=False))
    fields = ", ".join(f"the_{index}_th_input_field_of_a_wide_form" for index in range(20))
    dspy.Predict(f"{fields} -> answer")(**{name.strip(): unique for name in fields.split(",")})

    signature = _by_name(spans(), "predict").attributes[semconv.MODULE_SIGNATURE]
    assert len(signature) == 200 and signature.startswith("the_0_th_input_field_of_a_wide_form, the_1_th")
    assert signature.endswith(" chars]")


@dataclasses.dataclass
class DatabaseConfig:
    host: str
    password: str
    parent: Any = None


class Region(enum.Enum):
    EU = "eu"


def test_credentials_in_objects_json_cannot_take_as_they_are_stay_under_their_keys(traced):
    """A dataclass, a read-only mapping, a dict key JSON cannot have (a tuple, an Enum) or a cycle: the input's JSON
    used to give up and record the input's repr, where no key is a key and the credentials stayed."""
    spans = traced(ContentPolicy())
    cyclic: dict[str, Any] = {"secret": "cycle-secret-3"}
    cyclic["itself"] = cyclic
    looping = DatabaseConfig("db2", "dataclass-cycle-secret-6")
    looping.parent = looping

    class Echo(dspy.Module):
        def forward(self, settings: Any) -> Any:
            return dspy.Prediction(ok=True)

    inputs = [DatabaseConfig("db1", "dataclass-secret-1"), MappingProxyType({"client_secret": "mapping-secret-2"}),
              {"password": "tuple-key-secret-4", "grid": {(0, 1): "cell"}},
              {"api_key": "enum-key-secret-5", "quota": {Region.EU: 5}}, cyclic, looping,
              DatabaseConfig("db3", "dataclass-odd-key-secret-7", {("a", 1): "x"})]
    for settings in inputs:
        Echo()(settings=settings)
    recorded = [json.loads(span.attributes[semconv.INPUT_VALUE])["settings"] for span in spans()]
    assert recorded == [{"host": "db1", "password": REDACTED, "parent": None}, {"client_secret": REDACTED},
                        {"password": REDACTED, "grid": {"(0, 1)": "cell"}},
                        {"api_key": REDACTED, "quota": {"Region.EU": 5}}, {"secret": REDACTED, "itself": "<cycle>"},
                        {"host": "db2", "password": REDACTED, "parent": "<cycle>"},
                        {"host": "db3", "password": REDACTED, "parent": {"('a', 1)": "x"}}]
    assert "secret-" not in _everything_recorded(spans())
