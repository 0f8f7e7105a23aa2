"""Tracing changes nothing pickle sees: what lmscope wrapped pickles as it did unwrapped, and a copy still works.

Pickle saves a module's function by reference (`litellm.completion` for a `ProcessPoolExecutor` task), and
cloudpickle copies a class defined in `__main__`, a notebook or a function by value, its methods with it (MLflow's
`log_model`, Ray, joblib's workers): an LM or optimizer class of the app's own holds lmscope's wrapper there. Before,
the first raised PicklingError (the wrapper was named as LiteLLM's `litellm.main.completion`, which is not it) and
the second TypeError (the wrapper's runtime holds the tracer's locks); DSPy's own test suite has a test for the
second (`tests/callback/test_optimizer_callback.py::test_compile_callback_wrapper_round_trips_through_cloudpickle`).
"""

from __future__ import annotations

import concurrent.futures
import inspect
import multiprocessing
import pickle
from collections.abc import Iterator
from typing import Any

import cloudpickle
import dspy
import litellm
import pytest
from dspy.teleprompt import Teleprompter
from memory_spans import memory_provider

from lmscope.instrumentation.dspy import DSPyInstrumentor
from lmscope.instrumentation.litellm import LiteLLMInstrumentor
from lmscope.telemetry import _semconv as semconv

LITELLM_FUNCTIONS = ("completion", "acompletion", "text_completion", "atext_completion", "responses", "aresponses",
                     "embedding", "aembedding", "completion_with_retries", "acompletion_with_retries")
ANSWER = "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]"


@pytest.fixture
def instrumented() -> Iterator[Any]:
    """DSPy and LiteLLM instrumented into one in-memory provider; yields the finished-spans function."""
    provider, exporter = memory_provider()
    dspy_instrumentor, litellm_instrumentor = DSPyInstrumentor(), LiteLLMInstrumentor()
    dspy_instrumentor.instrument(provider.get_tracer("test"), capture_content=True)
    litellm_instrumentor.instrument(tracer=provider.get_tracer("test"), capture_content=True)
    try:
        yield exporter.get_finished_spans
    finally:
        litellm_instrumentor.uninstrument()
        dspy_instrumentor.uninstrument()
        dspy.configure(lm=None)


def app_classes() -> tuple[type, type]:
    """An LM with its own `__call__` and an optimizer, as an app defines them in a notebook: cloudpickle copies
    classes defined in a function by value, as it does `__main__`'s."""

    class NotebookLM(dspy.BaseLM):
        def __call__(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> list[str]:
            return [ANSWER]

    class NotebookOptimizer(Teleprompter):
        def compile(self, student: Any, *, trainset: Any) -> Any:
            return student

    return NotebookLM, NotebookOptimizer


@pytest.mark.parametrize("name", LITELLM_FUNCTIONS)
@pytest.mark.parametrize("pickler", [pickle, cloudpickle], ids=["pickle", "cloudpickle"])
def test_a_litellm_function_pickles_as_the_attribute_it_is(instrumented, pickler, name):
    function = getattr(litellm, name)
    assert function.__name__ == name
    assert pickler.loads(pickler.dumps(function)) is function  # by reference, as `litellm.<name>`


def test_a_litellm_call_handed_to_a_process_pool_runs_there(instrumented, lm_server):
    request = {"model": "openai/gpt-4o-mini", "api_base": lm_server.base_url, "api_key": "sk-test",
               "messages": [{"role": "user", "content": "What is the capital of France?"}]}
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        response = pool.submit(litellm.completion, **request).result(60)
    answer = response.choices[0].message.content
    assert answer == litellm.completion(**request).choices[0].message.content
    assert "What is the capital of France?" in answer


def test_an_apps_classes_copied_by_cloudpickle_work_and_are_traced(instrumented):
    lm_class, optimizer_class = (cloudpickle.loads(cloudpickle.dumps(cls)) for cls in app_classes())
    dspy.configure(lm=lm_class(model="notebook-lm"))
    student = dspy.Predict("question -> answer")
    assert optimizer_class().compile(student, trainset=[]) is student
    assert student(question="What is the capital of France?").answer == "Paris"
    names = [span.name for span in sorted(instrumented(), key=lambda span: span.start_time or 0)]
    assert names == ["optimize NotebookOptimizer", "predict", "chat notebook-lm"]
    [lm_span] = [span for span in instrumented() if span.name == "chat notebook-lm"]
    assert (lm_span.attributes or {})[semconv.GEN_AI_REQUEST_MODEL] == "notebook-lm"


def test_a_program_saved_whole_with_an_apps_lm_loads_and_is_traced(instrumented, tmp_path):
    """`save(..., save_program=True)` is DSPy's own cloudpickle of the whole program, its LM's class with it."""
    lm_class, _optimizer_class = app_classes()
    program = dspy.Predict("question -> answer")
    program.set_lm(lm_class(model="notebook-lm"))
    program.save(str(tmp_path / "program"), save_program=True)
    allow = {"allow_pickle": True} if "allow_pickle" in inspect.signature(dspy.load).parameters else {}  # DSPy 3.0
    loaded = dspy.load(str(tmp_path / "program"), **allow)
    assert loaded(question="What is the capital of France?").answer == "Paris"
    assert [span.name for span in instrumented()] == ["chat notebook-lm", "predict"]


@pytest.mark.slow  # imports MLflow: ~4 s
def test_mlflow_logs_and_loads_a_program_with_an_apps_lm(instrumented, tmp_path, monkeypatch):
    """MLflow's DSPy flavor cloudpickles the program and DSPy's settings (its LM) into the model: it raised
    TypeError under lmscope before. A local sqlite store: no server."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    lm_class, _optimizer_class = app_classes()
    dspy.configure(lm=lm_class(model="notebook-lm"))
    with mlflow.start_run():
        model = mlflow.dspy.log_model(dspy.Predict("question -> answer"), name="model")
    assert mlflow.pyfunc.load_model(model.model_uri).predict({"question": "What is the capital of France?"}) == {
        "answer": "Paris"}
    assert "chat notebook-lm" in [span.name for span in instrumented()]


def test_a_copy_made_while_lmscope_was_on_passes_calls_through_once_it_has_left():
    provider, exporter = memory_provider()
    instrumentor = DSPyInstrumentor()
    instrumentor.instrument(provider.get_tracer("test"), capture_content=True)
    try:
        lm_class, optimizer_class = (cloudpickle.loads(cloudpickle.dumps(cls)) for cls in app_classes())
    finally:
        instrumentor.uninstrument()
    try:
        dspy.configure(lm=lm_class(model="notebook-lm"))
        student = dspy.Predict("question -> answer")
        assert optimizer_class().compile(student, trainset=[]) is student
        assert student(question="What is the capital of France?").answer == "Paris"
    finally:
        dspy.configure(lm=None)
    assert exporter.get_finished_spans() == ()


def test_a_litellm_function_bound_while_lmscope_was_on_is_untraced_once_it_has_left():
    provider, exporter = memory_provider()
    instrumentor = LiteLLMInstrumentor()
    instrumentor.instrument(tracer=provider.get_tracer("test"), capture_content=True)
    completion = litellm.completion  # as `from litellm import completion` binds it
    completion(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "one"}], mock_response="traced")
    instrumentor.uninstrument()
    response = completion(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "two"}],
                          mock_response="untraced")
    assert response.choices[0].message.content == "untraced"
    assert [span.name for span in exporter.get_finished_spans()] == ["chat gpt-4o-mini"]
