"""Module paths that tell modules apart: container items named as DSPy names them, modules held by plain objects or
built inline, aliases, and the call index of repeated calls. Real DSPy against the stand-in LM server."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import dspy

from lmscope.telemetry import _semconv as semconv


def _module_spans(finished):
    return [span for span in finished if semconv.MODULE_PATH in span.attributes]


def _paths(finished):
    return {span.attributes[semconv.MODULE_PATH] for span in _module_spans(finished)}


def _predict_paths(finished):
    return {span.attributes[semconv.MODULE_PATH] for span in _module_spans(finished)
            if span.attributes[semconv.MODULE_CLASS] == "Predict"}


class Team(dspy.Module):
    """Predictors in a list, a dict, a tuple and nested lists, each called once."""

    def __init__(self):
        super().__init__()
        self.agents = [dspy.Predict("question -> answer"), dspy.Predict("question -> answer")]
        self.tools = {"search": dspy.Predict("question -> query"), "math": dspy.ChainOfThought("question -> answer")}
        self.pair = (dspy.Predict("question -> answer"), dspy.Predict("question -> answer"))

    def forward(self, question):
        for agent in self.agents:
            agent(question=question)
        self.tools["search"](question=question)
        self.tools["math"](question=question)
        for member in self.pair:
            member(question=question)
        return dspy.Prediction(answer="done")


def test_container_items_are_named_as_dspy_names_its_predictors(spans, make_lm, unique):
    dspy.configure(lm=make_lm())
    team = Team()
    team(question=f"What is the capital of France? {unique}")
    finished = spans()
    # DSPy's names (`named_predictors()`), from the root module lmscope names by its class.
    assert _predict_paths(finished) == {f"team.{name}" for name, _ in team.named_predictors()} == {
        "team.agents[0]", "team.agents[1]", "team.tools['search']", "team.tools['math'].predict",
        "team.pair[0]", "team.pair[1]"}
    predicts = [s for s in _module_spans(finished) if s.attributes[semconv.MODULE_CLASS] == "Predict"]
    assert len(predicts) == 6  # one span each: no two predictors share a path
    assert "team.tools['math']" in _paths(finished)


def test_nested_containers_are_named_as_dspy_names_its_sub_modules(spans, make_lm, unique):
    class Grid(dspy.Module):
        def __init__(self):
            super().__init__()
            self.grid = [[dspy.Predict("question -> answer"), dspy.Predict("question -> answer")],
                         [dspy.Predict("question -> answer")]]
            self.stages = {"first": [dspy.Predict("question -> answer")]}

        def forward(self, question):
            for row in self.grid:
                for cell in row:
                    cell(question=question)
            self.stages["first"][0](question=question)
            return dspy.Prediction(answer="done")

    dspy.configure(lm=make_lm())
    grid = Grid()
    grid(question=f"Where is Tokyo? {unique}")
    # `named_predictors()` does not look into nested containers; `named_sub_modules()` does (and spells a dict key
    # without quotes there, `stages[first][0]`: lmscope keeps the quotes `named_predictors()` uses for dict keys).
    nested = {name.removeprefix("self") for name, _ in grid.named_sub_modules(type_=dspy.Predict)}
    assert nested == {".grid[0][0]", ".grid[0][1]", ".grid[1][0]", ".stages[first][0]"}
    assert _predict_paths(spans()) == {"grid.grid[0][0]", "grid.grid[0][1]", "grid.grid[1][0]",
                                       "grid.stages['first'][0]"}


class Helper:
    """A plain object, not a dspy.Module, holding a predictor."""

    def __init__(self, signature):
        self.predict = dspy.Predict(signature)


class Assistant(dspy.Module):
    def __init__(self):
        super().__init__()
        self.helper = Helper("question -> answer")
        self.helpers = [Helper("question -> summary")]

    def forward(self, question):
        self.helper.predict(question=question)
        self.helpers[0].predict(question=question)
        dspy.Predict("question -> answer")(question=question)  # built inline, on every call
        dspy.Predict("question -> verdict")(question=question)
        return dspy.Prediction(answer="done")


def test_modules_held_by_plain_objects_or_built_inline_get_distinct_names(spans, make_lm, unique):
    dspy.configure(lm=make_lm())
    assistant = Assistant()
    assistant(question=f"What is 2 + 2? {unique}")
    assistant(question=f"What is 2 + 2? {unique}")
    finished = spans()
    expected = ["assistant.helper.predict", "assistant.helpers[0].predict",
                "assistant.predict#question->answer", "assistant.predict#question->verdict"]
    names = [s.attributes[semconv.MODULE_PATH] for s in sorted(_module_spans(finished), key=lambda s: s.start_time)]
    assert names == ["assistant", *expected] * 2  # the same names on every call: nothing grows with call count
    assert all(s.attributes.get(semconv.MODULE_CALL_INDEX, 0) == 0 for s in _module_spans(finished))


def test_names_are_the_same_in_a_fresh_process(spans, lm_server, unique, tmp_path):
    """No ids nor counters that depend on run order: a fresh process names the same program the same way."""
    dspy.configure(lm=dspy.LM("openai/gpt-4o-mini", api_base=lm_server.base_url, api_key="sk-x"))
    Assistant()(question=f"Name it {unique}")
    here = sorted(_paths(spans()))
    script = tmp_path / "names.py"
    script.write_text(textwrap.dedent(f"""
        import dspy
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from lmscope.instrumentation.dspy import DSPyInstrumentor
        from test_dspy_naming import Assistant

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        DSPyInstrumentor().instrument(provider.get_tracer("t"), capture_content=False)
        dspy.configure(lm=dspy.LM("openai/gpt-4o-mini", api_base={lm_server.base_url!r}, api_key="sk-x"))
        Assistant()(question="Name it {unique}")
        print(sorted({{s.attributes["lmscope.module.path"] for s in exporter.get_finished_spans()
                      if "lmscope.module.path" in s.attributes}}))
    """))
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).parent), *sys.path])}
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=environment,
                         timeout=120, check=True)
    assert run.stdout.strip() == repr(here)


def test_a_module_under_two_names_keeps_the_first_and_lists_its_aliases(spans, make_lm, unique):
    class QA(dspy.Module):
        def __init__(self):
            super().__init__()
            self.qa = dspy.Predict("question -> answer")
            self.qa_alias = self.qa
            self.team = [self.qa]

        def forward(self, question):
            return self.qa_alias(question=question)

    dspy.configure(lm=make_lm())
    QA()(question=f"Who wrote Hamlet? {unique}")
    (inner,) = [s for s in _module_spans(spans()) if s.attributes[semconv.MODULE_CLASS] == "Predict"]
    assert inner.attributes[semconv.MODULE_PATH] == "qa.qa"
    assert inner.attributes[semconv.MODULE_ALIASES] == ("qa.qa_alias", "qa.team[0]")


def test_repeated_calls_carry_their_call_index(spans, make_lm, unique, tree):
    class Loop(dspy.Module):
        def __init__(self):
            super().__init__()
            self.step = dspy.Predict("question -> answer")
            self.check = dspy.Predict("question -> verdict")

        def forward(self, question):
            for turn in range(3):
                self.step(question=f"{question} {turn}")
            self.check(question=question)
            return dspy.Prediction(answer="done")

    dspy.configure(lm=make_lm())
    Loop()(question=f"Count {unique}")
    Loop()(question=f"Count again {unique}")  # counted afresh under each parent span
    spans_in_order = sorted(_module_spans(spans()), key=lambda s: s.start_time)
    indices = [(s.attributes[semconv.MODULE_PATH], s.attributes.get(semconv.MODULE_CALL_INDEX))
               for s in spans_in_order]
    once = [("loop", None), ("loop.step", 0), ("loop.step", 1), ("loop.step", 2), ("loop.check", 0)]
    assert indices == once * 2


def test_react_steps_carry_their_call_index(spans, make_lm, unique):
    def population(city: str) -> str:
        """Population of a city."""
        return f"{city}: 2.1 million"

    dspy.configure(lm=make_lm())
    agent = dspy.ReAct("question -> answer", tools=[population])
    agent(question=f"How many people live in Paris? {unique}")
    finished = spans()
    steps = sorted((s for s in _module_spans(finished) if s.attributes[semconv.MODULE_PATH] == "re_act.react"),
                   key=lambda s: s.start_time)
    assert [s.attributes[semconv.MODULE_CALL_INDEX] for s in steps] == [0, 1]  # a tool call, then "finish"
    extract = [s for s in _module_spans(finished) if s.attributes[semconv.MODULE_PATH] == "re_act.extract"]
    assert [s.attributes[semconv.MODULE_CALL_INDEX] for s in extract] == [0]
    assert sum(s.name == "execute_tool population" for s in finished) == 1


def test_best_of_n_attempts_are_named_by_the_module_they_copy(spans, make_lm, unique):
    dspy.configure(lm=make_lm())
    best = dspy.BestOfN(dspy.Predict("question -> answer"), N=3, reward_fn=lambda args, pred: 0.0, threshold=1.0)
    best(question=f"Which attempt? {unique}")
    attempts = sorted((s for s in _module_spans(spans()) if s.attributes[semconv.MODULE_CLASS] == "Predict"),
                      key=lambda s: s.start_time)
    assert [(s.attributes[semconv.MODULE_PATH], s.attributes[semconv.MODULE_CALL_INDEX]) for s in attempts] == [
        ("best_of_n.module", 0), ("best_of_n.module", 1), ("best_of_n.module", 2)]


def test_batch_items_carry_their_batch_index_not_a_call_index(spans, make_lm, unique):
    class Pair(dspy.Module):
        def __init__(self):
            super().__init__()
            self.agents = [dspy.Predict("question -> answer"), dspy.Predict("question -> answer")]

        def forward(self, question):
            for agent in self.agents:
                agent(question=question)
            return dspy.Prediction(answer="done")

    dspy.configure(lm=make_lm())
    examples = [dspy.Example(question=f"Item {i} {unique}").with_inputs("question") for i in range(3)]
    Pair().batch(examples, num_threads=3)
    modules = _module_spans(spans())
    batch = next(s for s in modules if s.attributes[semconv.MODULE_PATH] == "pair.batch")
    assert semconv.MODULE_CALL_INDEX not in batch.attributes  # the root span: no parent to count in
    items = [s for s in modules if s.attributes[semconv.MODULE_PATH] == "pair"]
    assert sorted(s.attributes[semconv.BATCH_INDEX] for s in items) == [0, 1, 2]
    assert all(semconv.MODULE_CALL_INDEX not in s.attributes for s in items)
    # Inside each item, its own calls are counted under the item's span, on its worker thread.
    inner = [s for s in modules if s.attributes[semconv.MODULE_CLASS] == "Predict"]
    assert sorted((s.attributes[semconv.MODULE_PATH], s.attributes[semconv.MODULE_CALL_INDEX]) for s in inner) == \
        sorted([("pair.agents[0]", 0), ("pair.agents[1]", 0)] * 3)


def test_call_index_is_exact_when_children_of_one_parent_start_in_many_threads():
    """`ModuleFrame.next_call_index` under contention: every index handed out once."""
    from opentelemetry.trace import INVALID_SPAN

    from lmscope.instrumentation.dspy._frames import ModuleFrame

    frame = ModuleFrame(INVALID_SPAN, "parent", object(), None, False, False)
    seen: list[int] = []

    def work():
        seen.extend(frame.next_call_index("parent.child") for _ in range(2000))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == list(range(16000))


def test_list_and_dict_hits_are_remembered_and_checked_against_the_live_container(spans, make_lm, unique):
    from lmscope.instrumentation.dspy import _module_paths

    dspy.configure(lm=make_lm())
    team = Team()
    team(question=f"Remember me {unique}")
    assert any(entry[0] == "team.agents[1]" for entry in _module_paths._found_items.values())
    team.agents.reverse()  # the same objects, now at other indices: the remembered names no longer hold
    team(question=f"Remember me {unique}")
    calls = [s.attributes[semconv.MODULE_PATH] for s in sorted(_module_spans(spans()), key=lambda s: s.start_time)
             if s.attributes[semconv.MODULE_PATH].startswith("team.agents")]
    assert calls == ["team.agents[0]", "team.agents[1]"] * 2


def test_paths_survive_an_optimizer_deep_copy(spans, make_lm, unique):
    dspy.configure(lm=make_lm())
    team = Team()
    team(question=f"Before {unique}")
    before = _paths(spans())
    count = len(spans())
    team.deepcopy()(question=f"Before {unique}")
    assert _paths(spans()[count:]) == before


def test_report_and_tree_keep_two_predictors_of_a_list_apart(spans, make_lm, unique, tmp_path, capsys):
    """`lmscope report` and `lmscope tree` on a trace file: a row per predictor, never one merged row (predictors
    held by plain objects were all `pair.predict` before)."""
    from lmscope._cli import main
    from lmscope.telemetry._exporters.otlp_json import OtlpJsonFileExporter

    class Pair(dspy.Module):
        def __init__(self):
            super().__init__()
            self.agents = [dspy.Predict("question -> answer"), dspy.Predict("question -> answer")]
            self.helpers = (Helper("question -> answer"), Helper("question -> answer"))

        def forward(self, question):
            return [agent(question=question) for agent in [*self.agents, *(h.predict for h in self.helpers)]]

    dspy.configure(lm=make_lm())
    Pair()(question=f"Which agent? {unique}")
    exporter = OtlpJsonFileExporter(tmp_path / "spans.jsonl")
    exporter.export(spans())
    exporter.shutdown()

    assert main(["report", str(tmp_path / "spans.jsonl")]) == 0
    report = capsys.readouterr().out
    module_rows = [line.split()[:2] for line in report.split("\n\n")[2].splitlines()[2:-2]]
    assert sorted(module_rows) == [["pair.agents[0]", "1"], ["pair.agents[1]", "1"], ["pair.helpers[0].predict", "1"],
                                   ["pair.helpers[1].predict", "1"]]

    assert main(["tree", str(tmp_path / "spans.jsonl")]) == 0
    labels = [line.lstrip("│├└─ ").split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert labels == ["pair", "pair.agents[0]", "chat", "pair.agents[1]", "chat", "pair.helpers[0].predict", "chat",
                      "pair.helpers[1].predict", "chat"]


SHARED = dspy.Predict("question -> answer")
"""A module-level predictor, held by no module."""


def test_a_module_level_predictor_is_named_as_unheld_until_an_attribute_holds_it(spans, make_lm, unique):
    class UsesShared(dspy.Module):
        def forward(self, question):
            return SHARED(question=question)

    dspy.configure(lm=make_lm())
    program = UsesShared()
    program(question=f"Shared {unique}")
    program(question=f"Shared {unique}")  # remembered: the same name
    program.shared = SHARED  # held now: named by its attribute from the next call on
    program(question=f"Shared {unique}")
    paths = [s.attributes[semconv.MODULE_PATH] for s in sorted(_module_spans(spans()), key=lambda s: s.start_time)
             if s.attributes[semconv.MODULE_CLASS] == "Predict"]
    assert paths == ["uses_shared.predict#question->answer"] * 2 + ["uses_shared.shared"]
