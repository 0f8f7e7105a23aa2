"""The demo's DSPy program under lmscope, in phases a test triggers one by one: an app for
test_dashboards_prometheus.py, run in its own interpreter (lmscope.instrument() sets process-wide providers).

    python demo_workload_app.py LM_BASE_URL DEAD_LM_BASE_URL TRACE_FILE SERVICE_NAME

Prints `METRICS host:port` once its scrape endpoint listens, then reads one phase name per line from stdin and
prints `DONE <phase>` after each: `demo` (the demo's four runs: fresh, cached, under dspy.context, a threaded
batch), `later` (the first question again from DSPy's disk cache, and a question never asked), `evaluate` (a
`dspy.Evaluate` of the program on two new questions: spend in lmscope.phase "evaluate"), `optimize` (a
`BootstrapFewShot` compile of a fresh program on two more: spend in "optimize"), `fail` (the program with an LM whose
server refuses connections). `exit` writes the trace file and stops.
"""

from __future__ import annotations

import sys


def main(lm_url: str, dead_lm_url: str, trace_file: str, service: str) -> None:
    import lmscope

    handle = lmscope.instrument(service_name=service, exporters=["file"], file_path=trace_file,
                                metrics_exporters=["prometheus"], prometheus_endpoint="127.0.0.1:0")
    import dspy

    from lmscope._demo import QUESTIONS, build_program, run_workload

    lm = dspy.LM("openai/gpt-4o-mini", api_base=lm_url, api_key="sk-lmscope-test")
    dead_lm = dspy.LM("openai/gpt-4o-mini", api_base=dead_lm_url, api_key="sk-lmscope-test", num_retries=0)
    dspy.configure(lm=lm)
    program = build_program()

    def later() -> None:
        dspy.cache.reset_memory_cache()
        program(question=QUESTIONS[0])
        program(question="Which city is the capital of Japan?")

    def fail() -> None:
        with dspy.context(lm=dead_lm):
            try:
                program(question="Which river flows through Berlin?")
            except Exception as exc:  # noqa: BLE001 - the LM call fails: that is the point of this phase
                print("FAILED", type(exc).__name__, flush=True)

    def evaluate() -> None:
        devset = [dspy.Example(question=q).with_inputs("question")
                  for q in ("Which city is the capital of Italy?", "Which city is the capital of Spain?")]
        dspy.Evaluate(devset=devset, metric=lambda example, prediction, trace=None: 1.0, num_threads=2)(program)

    def optimize() -> None:
        trainset = [dspy.Example(question=q, answer="Paris").with_inputs("question")
                    for q in ("Which city is the capital of Portugal?", "Which city is the capital of Greece?")]
        dspy.BootstrapFewShot(metric=lambda example, prediction, trace=None: True, max_bootstrapped_demos=2,
                              max_labeled_demos=0).compile(build_program(), trainset=trainset)

    phases = {"demo": lambda: run_workload(program, lm), "later": later, "evaluate": evaluate, "optimize": optimize,
              "fail": fail}
    host, port = handle.prometheus_address
    print(f"METRICS {host}:{port}", flush=True)
    for line in sys.stdin:
        phase = line.strip()
        if phase == "exit":
            break
        phases[phase]()
        print(f"DONE {phase}", flush=True)
    handle.force_flush()
    lmscope.uninstrument()


if __name__ == "__main__":
    main(*sys.argv[1:5])
