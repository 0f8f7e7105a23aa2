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
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
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
    monkeypatch.chdir(tmp_path)  # MLflow writes the model's artifacts under ./mlruns
    lm_class, _optimizer_class = app_classes()
    dspy.configure(lm=lm_class(model="notebook-lm"))
    with mlflow.start_run():
        model = mlflow.dspy.log_model(dspy.Predict("question -> answer"), name="model")
    assert mlflow.pyfunc.load_model(model.model_uri).predict({"question": "What is the capital of France?"}) == {
        "answer": "Paris"}
    assert "chat notebook-lm" in [span.name for span in instrumented()]


def test_uninstrument_puts_back_an_apps_class_loaded_again_in_the_same_process():
    """cloudpickle loads a class it copied by value into that very class when it is still there (a program saved
    and loaded again in one notebook): its methods are set anew from the copies, lmscope's wrapper among them."""
    lm_class, optimizer_class = app_classes()
    own = vars(lm_class)["__call__"], vars(optimizer_class)["compile"]
    provider, _exporter = memory_provider()
    instrumentor = DSPyInstrumentor()
    instrumentor.instrument(provider.get_tracer("test"), capture_content=True)
    try:
        assert [cloudpickle.loads(cloudpickle.dumps(cls)) for cls in (lm_class, optimizer_class)] == [
            lm_class, optimizer_class]
        assert vars(lm_class)["__call__"] is not own[0]  # a copy of lmscope's wrapper
    finally:
        instrumentor.uninstrument()
    assert (vars(lm_class)["__call__"], vars(optimizer_class)["compile"]) == own


def test_uninstrument_keeps_an_apps_own_assignment_of_one_lm_classs_call_to_another():
    """lmscope's wrappers of two LM classes' `__call__` share their code: only the copy of this patch's own wrapper
    is taken back, not another class's the app put there."""
    first, second = app_classes()[0], app_classes()[0]
    second_own = vars(second)["__call__"]
    provider, _exporter = memory_provider()
    instrumentor = DSPyInstrumentor()
    instrumentor.instrument(provider.get_tracer("test"), capture_content=True)
    try:
        second.__call__ = first.__call__  # type: ignore[method-assign]  # the app's own choice, lmscope on
        assigned = vars(second)["__call__"]
    finally:
        instrumentor.uninstrument()
    assert vars(second)["__call__"] is assigned is not second_own


_LOAD_APP_CLASSES = """
import sys

import cloudpickle
import dspy
from memory_spans import memory_provider

from lmscope.instrumentation.dspy import DSPyInstrumentor

provider, exporter = memory_provider()
if sys.argv[2] == "on":
    DSPyInstrumentor().instrument(provider.get_tracer("app"), capture_content=False)
with open(sys.argv[1], "rb") as pickled:
    lm_class, optimizer_class = cloudpickle.load(pickled)
dspy.configure(lm=lm_class(model="notebook-lm"))
student = dspy.Predict("question -> answer")
assert optimizer_class().compile(student, trainset=[]) is student
print(student(question="What is the capital of France?").answer, sorted(s.name for s in exporter.get_finished_spans()))
"""


@pytest.mark.parametrize("lmscope_there", ["on", "off"])
def test_an_apps_classes_pickled_with_lmscope_on_load_in_another_process(instrumented, tmp_path, lmscope_there):
    """Where they load, they trace if lmscope is on and pass every call through if it is not."""
    pickled = tmp_path / "classes.pkl"
    pickled.write_bytes(cloudpickle.dumps(app_classes()))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent.parent), *sys.path])}
    done = subprocess.run([sys.executable, "-c", _LOAD_APP_CLASSES, str(pickled), lmscope_there], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    spans = "['chat notebook-lm', 'optimize NotebookOptimizer', 'predict']" if lmscope_there == "on" else "[]"
    assert done.stdout.strip() == f"Paris {spans}"


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


def test_a_litellm_function_bound_while_lmscope_was_on_follows_lmscope_off_and_on_again():
    """`from litellm import completion` while lmscope is on holds lmscope's wrapper: it passes calls through while
    lmscope is off, and traces into the instrumentation in force once it is on again (as `litellm.completion` does)."""
    first, second = memory_provider(), memory_provider()
    instrumentor = LiteLLMInstrumentor()
    instrumentor.instrument(tracer=first[0].get_tracer("test"), capture_content=True)
    completion = litellm.completion  # as `from litellm import completion` binds it

    def ask(text: str) -> str:
        response = completion(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": text}],
                              mock_response=text)
        return str(response.choices[0].message.content)

    assert ask("on") == "on"
    instrumentor.uninstrument()
    assert ask("off") == "off"
    instrumentor.instrument(tracer=second[0].get_tracer("test"), capture_content=True)
    try:
        assert ask("on again") == "on again"
    finally:
        instrumentor.uninstrument()
    spans = {name: [span.attributes[semconv.OUTPUT_VALUE] for span in exporter.get_finished_spans()]
             for name, (_provider, exporter) in (("first", first), ("second", second))}
    assert spans == {"first": ['["on"]'], "second": ['["on again"]']}
