"""`lmscope demo`: a 3-step DSPy RAG program traced end to end, offline, in under a minute (`--litellm`: a plain
LiteLLM app instead, `_demo_litellm.py`).

rewrite (Predict) -> retrieve (a retriever module over a small corpus) -> answer (ChainOfThought),
run four ways: fresh, cached, under `dspy.context(...)`, and as a threaded batch. The LM is lmscope's
stand-in server on 127.0.0.1 unless `--model` names a real provider model (its key from the usual
environment variable, e.g. OPENAI_API_KEY).

`build_program` is the one definition of this program: the tests and the benchmarks build it here too.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import dspy

    from ._lm_server import StandInLM

CORPUS = (
    "Paris is the capital and largest city of France.",
    "Berlin is the capital of Germany and its largest city.",
    "Tokyo is the capital of Japan.",
    "The Seine flows through Paris before reaching the English Channel.",
    "Mount Fuji is the highest mountain in Japan.",
    "The Brandenburg Gate is a landmark in Berlin.",
)
QUESTIONS = (
    "What is the capital of France?",
    "Which river flows through Paris?",
    "What is the highest mountain in Japan?",
    "Which landmark stands in Berlin?",
)


Retrieve = Callable[[str], Sequence[str]]
"""A retrieval strategy: the rewritten query in, the passages the answer step reads out."""


def keyword_search(query: str) -> list[str]:
    """The demo's retrieval, a stand-in for a vector store: the two CORPUS passages that contain the most of the
    query's words longer than three characters (ties keep CORPUS order)."""
    words = {word.strip("?.,").lower() for word in query.split() if len(word) > 3}
    ranked = sorted(CORPUS, key=lambda passage: -sum(word in passage.lower() for word in words))
    return ranked[:2]


def build_program(retrieve: Retrieve = keyword_search) -> dspy.Module:
    """A fresh 3-step RAG program, the one the demo runs and the tests and benchmarks trace:
    rewrite (Predict "question -> query") -> retrieve (a `Retriever` module calling `retrieve`) -> answer
    (ChainOfThought "context: list[str], question -> answer").

    Tests pass a `retrieve` returning fixed passages, so the LM sees the same prompts in every run.
    """
    # Imported here, not at the top: `import lmscope._demo` (the CLI, the tests' collection) stays free of DSPy.
    import dspy

    # dspy ships no type information, so to mypy its classes are `Any` ("cannot subclass Any").
    class Retriever(dspy.Module):  # type: ignore[misc]
        """Retrieval as a module step of its own: "Retriever" in the class name makes it a RETRIEVER span."""

        def forward(self, query: str) -> dspy.Prediction:
            return dspy.Prediction(passages=list(retrieve(query)))

    class RAG(dspy.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.rewrite = dspy.Predict("question -> query")
            self.retrieve = Retriever()
            self.answer = dspy.ChainOfThought("context: list[str], question -> answer")

        def forward(self, question: str) -> dspy.Prediction:
            query = self.rewrite(question=question).query
            passages = self.retrieve(query=query).passages
            return self.answer(context=passages, question=question)

    return RAG()


def banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def run(model: str | None = None, file_path: str | None = None, exporters: Sequence[str] | None = None,
        lm_base_url: str | None = None, litellm: bool = False) -> int:
    """Run the four passes (`litellm`: the LiteLLM app's three calls); `lm_base_url` points at a stand-in LM server
    already running (tests share one)."""
    # Keep the demo's DSPy cache and price lookups local: a first run must really be a fresh run.
    if "DSPY_CACHEDIR" not in os.environ:
        cache_dir = tempfile.mkdtemp(prefix="lmscope-demo-cache-")
        os.environ["DSPY_CACHEDIR"] = cache_dir
        atexit.register(shutil.rmtree, cache_dir, ignore_errors=True)  # at exit: DSPy keeps its cache open till then
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import lmscope

    handle = lmscope.instrument(service_name="lmscope-demo", exporters=list(exporters or ("console", "file")),
                                file_path=file_path)
    with ExitStack() as stack:
        server: StandInLM | None = None
        if model is None:
            if lm_base_url is None:
                from ._lm_server import StandInLM

                server = stack.enter_context(StandInLM())
                lm_base_url = server.base_url
            print(f"stand-in LM server on {lm_base_url} (real HTTP, real token counts)")
        usage = stack.enter_context(lmscope.track())
        with lmscope.context(session_id="demo-session", user_id="demo-user", tags=["demo"]):
            if litellm:
                from . import _demo_litellm

                _demo_litellm.run_workload(lm_base_url, "sk-lmscope-demo" if model is None else None,
                                           model or _demo_litellm.CHAT_MODEL)
            else:
                run_dspy(model, lm_base_url)
        _print_summary(usage.by_model())
        if server is not None:
            _print_bill(server)
    # Flushes (bounded: a down OTLP backend does not hold the demo up) and reports spans it could not send.
    lmscope.uninstrument()
    path = handle.file_path
    if path is not None:
        print(f"\ntrace file: {path}  (try: lmscope tree {path}; lmscope report {path} --html report.html)")
    return 0


def run_dspy(model: str | None, lm_base_url: str | None) -> None:
    """The DSPy RAG program's four passes, on `model` or the stand-in server at `lm_base_url`."""
    import dspy

    if model is None:
        lm = dspy.LM("openai/gpt-4o-mini", api_base=lm_base_url, api_key="sk-lmscope-demo")
    else:
        lm = dspy.LM(model)
    dspy.configure(lm=lm)
    run_workload(build_program(), lm)


def run_workload(program: dspy.Module, lm: dspy.LM) -> None:
    """The demo's four runs of `program`: fresh, cached, under `dspy.context(...)`, a threaded batch."""
    import dspy

    banner("1. fresh run")
    print("answer:", program(question=QUESTIONS[0]).answer)
    banner("2. the same question again: served by DSPy's cache")
    print("answer:", program(question=QUESTIONS[0]).answer)
    banner("3. under dspy.context(lm=<temperature 0.7>, num_threads=2)")
    with dspy.context(lm=lm.copy(temperature=0.7), num_threads=2):
        print("answer:", program(question=QUESTIONS[1]).answer)
    banner("4. a threaded batch of 3 questions")
    examples = [dspy.Example(question=q).with_inputs("question") for q in QUESTIONS[1:]]
    for prediction in program.batch(examples, num_threads=2, disable_progress_bar=True):
        print("answer:", prediction.answer)


def _print_summary(by_model: dict[str, dict[str, Any]]) -> None:
    banner("usage and cost (lmscope.track)")
    # The column names of `lmscope report`: "cached" counts prompt-cache tokens, "cache hits" calls a cache answered
    print(f"{'model':<24}{'calls':>6}{'cache hits':>11}{'in tok':>9}{'out tok':>9}{'cached tok':>12}"
          f"{'cost USD':>12}{'saved USD':>12}")
    for model, usage in sorted(by_model.items()):
        print(f"{model:<24}{usage['calls']:>6}{usage['cache_hits']:>11}{usage['input_tokens']:>9}"
              f"{usage['output_tokens']:>9}{usage['cached_tokens']:>12}{usage['cost_usd']:>12.6f}"
              f"{usage['saved_usd']:>12.6f}")


def _print_bill(server: StandInLM) -> None:
    """What the stand-in server billed: the figures lmscope's spans and `track()` must add up to."""
    prompt, completion = server.billed_chat_tokens
    print(f"stand-in LM server billed: {server.requests} chat requests, {prompt} prompt + {completion} completion "
          f"tokens; {server.embedding_requests} embedding requests, {server.embedding_tokens} tokens")
