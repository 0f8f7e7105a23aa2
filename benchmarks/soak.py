"""Soak: lmscope under the loads and faults a production app meets, with every span accounted for.

    python benchmarks/soak.py                 # every scenario, bounded to about 10 minutes on 2 cores
    python benchmarks/soak.py --quick         # smaller counts (~1 minute): a smoke run
    python benchmarks/soak.py --only sigterm  # one scenario

Each scenario runs a real DSPy program (the demo's RAG, or one `Predict`, on `dspy.utils.DummyLM`) in a child
process instrumented with `lmscope.instrument()`, and counts every span it ended (a counting span processor on
lmscope's tracer provider). Then, per exporter, the spans that arrived (read back from the trace file, or counted
by a local OTLP receiver) plus the spans lmscope said it dropped (its exit line, `lmscope: N spans were not
exported; ...`) must add up to the spans produced. Any span missing without being counted is a failure: the exit
code is 1. RSS is the child's, at start and end.

Scenarios: `threads64` (`Module.batch` at 64 threads to a file and a healthy OTLP receiver), `forks` (a parent
exporting while it forks children that trace and exit), `sigterm` (SIGTERM while spans are queued), `full_disk`
(a 1 MiB tmpfs; root only, else skipped and said so), `backends_down` (a refusing and a hanging OTLP backend),
`calls100k` (100,000 calls in a row: memory must stay flat).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the local OTLP backends the tests use too
import otlp_servers  # type: ignore[import-not-found]  # noqa: E402

DROP_LINE = re.compile(r"lmscope: [\d,]+ spans were not exported; (.*)")
DROP_PART = re.compile(r"(\w+) to .*?: ([\d,]+) \(")


# --- the child: one instrumented program ------------------------------------------------------------------------
def _child(scenario: str, settings: dict[str, Any]) -> None:
    """Runs in the child process: instrument, run the scenario's load, print {"produced", "rss_*"} as JSON."""
    import threading

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import dspy
    from dspy.utils import DummyLM
    from opentelemetry.sdk.trace import SpanProcessor

    import lmscope
    from lmscope._demo import build_program

    class Counter(SpanProcessor):
        def __init__(self) -> None:
            self.ended = 0
            self._lock = threading.Lock()

        def on_end(self, span: object) -> None:
            with self._lock:
                self.ended += 1

    report_path = Path(str(settings["report"]))

    def report(produced: int) -> None:
        report_path.write_text(json.dumps({"produced": produced, "rss_start_kb": rss_start,
                                           "rss_end_kb": _rss_kb(), "pid": os.getpid()}))

    rss_start = _rss_kb()
    counter = Counter()
    if scenario == "sigterm":  # the app's own handler, set before lmscope's: it must still run, after the flush
        def on_term(signum: int, frame: object) -> None:
            report(counter.ended)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

        signal.signal(signal.SIGTERM, on_term)
    handle = lmscope.instrument(metrics_exporters="none", **settings["options"])
    handle.tracer_provider.add_span_processor(counter)
    # Dict mode answers by a key found in the prompt, so it never runs out; every step's prompt has a question.
    answers = {"query": "capital of France", "reasoning": "The passages say so.", "answer": "Paris"}
    dspy.configure(lm=DummyLM({"[[ ## question ## ]]": answers}), disable_history=True)  # memory stays flat
    program = build_program(retrieve=lambda query: ["Paris is the capital of France."])
    calls = int(settings["calls"])
    if scenario == "threads64":
        examples = [dspy.Example(question=f"q{i}").with_inputs("question") for i in range(calls)]
        for _ in range(int(settings["rounds"])):
            program.batch(examples, num_threads=64, disable_progress_bar=True)
    elif scenario == "forks":
        _forking_load(program, calls, int(settings["forks"]), counter, report_path)
    elif scenario == "sigterm":
        print("ready", flush=True)
        while True:
            program(question="What is the capital of France?")
    elif scenario == "calls100k":
        predict = dspy.Predict("question -> answer")
        for index in range(calls):
            predict(question="What is the capital of France?")
            if index == 1000:
                rss_start = _rss_kb()  # after warm-up: the growth that matters is the steady state's
    else:
        for _ in range(calls):
            program(question="What is the capital of France?")
    report(counter.ended)
    lmscope.uninstrument()


def _forking_load(program: Callable[..., object], calls: int, forks: int, counter: object, report_path: Path) -> None:
    """The parent keeps tracing in a thread while it forks: each child traces `calls` calls, flushes and exits."""
    import threading

    import lmscope

    stop = threading.Event()

    def background() -> None:
        while not stop.is_set():
            program(question="What is the capital of France?")

    producer = threading.Thread(target=background)
    producer.start()
    children = []
    for _ in range(forks):
        pid = os.fork()
        if pid == 0:  # the child: trace, flush, report, exit without running the parent's atexit
            before = counter.ended  # type: ignore[attr-defined]
            for _ in range(calls):
                program(question="What is the capital of France?")
            flushed = lmscope.force_flush(10_000)
            Path(f"{report_path}.child{os.getpid()}").write_text(
                json.dumps({"produced": counter.ended - before, "flushed": flushed}))  # type: ignore[attr-defined]
            os._exit(0)
        children.append(pid)
    deadline = time.monotonic() + 120
    for pid in children:
        while time.monotonic() < deadline:
            done, _status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            Path(f"{report_path}.child{pid}").write_text(json.dumps({"hung": True}))
    stop.set()
    producer.join()


def _rss_kb() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


# --- the parent: run, count, compare ------------------------------------------------------------------------------
@dataclass
class Outcome:
    scenario: str
    produced: int
    arrived: dict[str, int]
    dropped: dict[str, int]
    rss_kb: tuple[int, int]
    notes: list[str] = field(default_factory=list)

    @property
    def missing(self) -> dict[str, int]:
        return {name: self.produced - arrived - self.dropped.get(name, 0) for name, arrived in self.arrived.items()}

    @property
    def ok(self) -> bool:
        return all(count == 0 for count in self.missing.values()) and not set(self.notes) & _FAILING_NOTES


_FAILING_NOTES = frozenset({"hung children", "the child hung"})


def _spans_in_file(path: Path) -> tuple[int, int]:
    """(spans in whole, readable lines; unreadable lines) of an OTLP/JSON lines file."""
    spans = bad = 0
    if not path.exists():
        return 0, 0
    with path.open("rb") as stream:
        for line in stream:
            try:
                request = json.loads(line)
            except ValueError:
                bad += 1
                continue
            spans += sum(len(scope.get("spans", [])) for resource in request.get("resourceSpans", [])
                         for scope in resource.get("scopeSpans", []))
    return spans, bad


def _drops(stderr: str) -> dict[str, int]:
    found = DROP_LINE.search(stderr)
    if found is None:
        return {}
    return {name: int(count.replace(",", "")) for name, count in DROP_PART.findall(found.group(1))}


def _run_child(scenario: str, workdir: Path, options: dict[str, Any], *, calls: int, timeout: float,
               extra: dict[str, Any] | None = None, on_ready: Callable[[subprocess.Popen[str]], None] | None = None
               ) -> tuple[dict[str, Any], str]:
    report = workdir / f"{scenario}.report.json"
    settings = {"options": options, "calls": calls, "report": str(report), **(extra or {})}
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "DSPY_CACHEDIR": str(workdir / "dspy-cache"),
           "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, __file__, "--child", scenario, json.dumps(settings)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=workdir)
    if on_ready is not None:
        on_ready(process)
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        stderr += "\n[soak: the child hung and was killed]"
    facts = json.loads(report.read_text()) if report.exists() else {"produced": -1, "rss_start_kb": 0,
                                                                     "rss_end_kb": 0}
    facts["returncode"] = process.returncode
    return facts, stderr


def scenario_threads64(workdir: Path, quick: bool) -> Outcome:
    trace_file = workdir / "threads64.jsonl"
    with otlp_servers.OtlpReceiverProcess() as receiver:
        facts, stderr = _run_child("threads64", workdir, {"exporters": "file,otlp", "file_path": str(trace_file),
                                                          "otlp_endpoint": receiver.url},
                                   calls=300 if quick else 3000, extra={"rounds": 1 if quick else 3}, timeout=600)
        received = len(receiver.span_ids())
    in_file, bad = _spans_in_file(trace_file)
    return Outcome("threads64", int(facts["produced"]), {"file": in_file, "otlp": received}, _drops(stderr),
                   (int(facts["rss_start_kb"]), int(facts["rss_end_kb"])), _notes(facts, stderr, bad))


def scenario_forks(workdir: Path, quick: bool) -> Outcome:
    trace_file = workdir / "forks.jsonl"
    facts, stderr = _run_child("forks", workdir, {"exporters": "file", "file_path": str(trace_file)},
                               calls=5, extra={"forks": 8 if quick else 40}, timeout=300)
    children = [json.loads(path.read_text()) for path in workdir.glob("forks.report.json.child*")]
    produced = int(facts["produced"]) + sum(int(child.get("produced", 0)) for child in children)
    notes = _notes(facts, stderr, _spans_in_file(trace_file)[1])
    hung = sum(1 for child in children if child.get("hung"))
    notes.append(f"{len(children)} forked children, {hung} hung")
    if hung:
        notes.append("hung children")
    return Outcome("forks", produced, {"file": _spans_in_file(trace_file)[0]}, _drops(stderr),
                   (int(facts["rss_start_kb"]), int(facts["rss_end_kb"])), notes)


def scenario_sigterm(workdir: Path, quick: bool) -> Outcome:
    trace_file = workdir / "sigterm.jsonl"

    def terminate_after_a_while(process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        process.stdout.readline()  # "ready": instrumented and tracing
        time.sleep(1 if quick else 5)
        process.send_signal(signal.SIGTERM)

    facts, stderr = _run_child("sigterm", workdir, {"exporters": "file", "file_path": str(trace_file)}, calls=0,
                               timeout=120, on_ready=terminate_after_a_while)
    notes = _notes(facts, stderr, _spans_in_file(trace_file)[1])
    notes.append(f"exit status {facts['returncode']} (killed by SIGTERM: {facts['returncode'] == -signal.SIGTERM})")
    return Outcome("sigterm", int(facts["produced"]), {"file": _spans_in_file(trace_file)[0]}, _drops(stderr),
                   (int(facts["rss_start_kb"]), int(facts["rss_end_kb"])), notes)


def scenario_full_disk(workdir: Path, quick: bool) -> Outcome | None:
    if os.geteuid() != 0:
        return None
    disk = workdir / "tiny-disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], check=True)
    try:
        trace_file = disk / "full.jsonl"
        facts, stderr = _run_child("full_disk", workdir, {"exporters": "file", "file_path": str(trace_file)},
                                   calls=300 if quick else 2000, timeout=300)
        in_file, bad = _spans_in_file(trace_file)
    finally:
        subprocess.run(["umount", str(disk)], check=False)
    return Outcome("full_disk", int(facts["produced"]), {"file": in_file}, _drops(stderr),
                   (int(facts["rss_start_kb"]), int(facts["rss_end_kb"])), _notes(facts, stderr, bad))


def scenario_backends_down(workdir: Path, quick: bool) -> Outcome:
    with otlp_servers.HangingServer() as hanging:
        facts, stderr = _run_child("backends_down", workdir,
                                   {"exporters": "otlp,jaeger", "otlp_endpoint": otlp_servers.refused_url(),
                                    "jaeger_endpoint": hanging.url}, calls=100 if quick else 1000, timeout=300)
    return Outcome("backends_down", int(facts["produced"]), {"otlp": 0, "jaeger": 0}, _drops(stderr),
                   (int(facts["rss_start_kb"]), int(facts["rss_end_kb"])), _notes(facts, stderr, 0))


def scenario_calls100k(workdir: Path, quick: bool) -> Outcome:
    trace_file = workdir / "calls.jsonl"
    facts, stderr = _run_child("calls100k", workdir, {"exporters": "file", "file_path": str(trace_file)},
                               calls=10_000 if quick else 100_000, timeout=900)
    in_file, bad = _spans_in_file(trace_file)
    trace_file.unlink(missing_ok=True)
    return Outcome("calls100k", int(facts["produced"]), {"file": in_file}, _drops(stderr),
                   (int(facts["rss_start_kb"]), int(facts["rss_end_kb"])), _notes(facts, stderr, bad))


def _notes(facts: dict[str, Any], stderr: str, unreadable_lines: int) -> list[str]:
    notes = []
    if unreadable_lines:
        notes.append(f"{unreadable_lines} unreadable lines in the file")
    if "hung and was killed" in stderr:
        notes.append("the child hung")
    if "Traceback" in stderr:
        notes.append("a traceback on stderr: " + stderr[stderr.index("Traceback"):][:300].replace("\n", " | "))
    return notes


SCENARIOS: dict[str, Callable[[Path, bool], Outcome | None]] = {
    "threads64": scenario_threads64, "forks": scenario_forks, "sigterm": scenario_sigterm,
    "full_disk": scenario_full_disk, "backends_down": scenario_backends_down, "calls100k": scenario_calls100k,
}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], json.loads(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts: a smoke run of about a minute")
    parser.add_argument("--only", choices=sorted(SCENARIOS), action="append", help="run only these scenarios")
    arguments = parser.parse_args()
    started = time.monotonic()
    failed = False
    print(f"{'scenario':14} {'produced':>9}  {'exporter':8} {'arrived':>9} {'dropped':>8} {'missing':>8}  "
          f"{'RSS start -> end (MB)':>22}  notes")
    for name in arguments.only or list(SCENARIOS):
        with tempfile.TemporaryDirectory(prefix=f"lmscope-soak-{name}-") as directory:
            outcome = SCENARIOS[name](Path(directory), arguments.quick)
        if outcome is None:
            print(f"{name:14} skipped: needs root (a tmpfs mount)")
            continue
        failed |= not outcome.ok
        rss = f"{outcome.rss_kb[0] / 1024:.0f} -> {outcome.rss_kb[1] / 1024:.0f}"
        for index, (exporter, arrived) in enumerate(outcome.arrived.items()):
            first = f"{name:14} {outcome.produced:>9,}" if index == 0 else " " * 24
            print(f"{first}  {exporter:8} {arrived:>9,} {outcome.dropped.get(exporter, 0):>8,} "
                  f"{outcome.missing[exporter]:>8,}  {rss if index == 0 else '':>22}  "
                  f"{'; '.join(outcome.notes) if index == 0 else ''}")
    print(f"total {time.monotonic() - started:.0f} s; {'FAIL: spans went missing uncounted' if failed else 'OK'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
