"""A process that forks while spans are being exported: every child traces normally and exits.

Real processes: an app script instruments lmscope with its file exporter, keeps a producer thread ending spans
(so export workers are writing and locks are held at the moment of each fork), and forks 40 times. The producer is
paced and batches are small: an unpaced one outran the exporter on a loaded box and its drop report failed the test. Without
lmscope/telemetry/_fork.py a child inherited a lock the parent's export worker held and its flush never
returned (10 of 40 children on the code before it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [pytest.mark.usefixtures("clean_env"),
              pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")]

FORKS = 40

APP = textwrap.dedent("""
    import json, multiprocessing, os, sys, threading, time
    import lmscope
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    path, forks, how = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    trace.set_tracer_provider(TracerProvider())  # the app's own, without exporters of its own
    lmscope.instrument(exporters="file", file_path=path, export_all_spans=True)  # the app's spans go to lmscope's file
    tracer = trace.get_tracer("fork-test")
    stop = threading.Event()

    def produce():  # paced: as fast as the queue drains on a loaded box, so no span is ever dropped
        while not stop.is_set():
            with tracer.start_as_current_span("parent.work"):
                pass
            time.sleep(0.0005)

    def child(i):  # a span of its own, flushed; then out without the parent's atexit hooks
        tracer.start_span(f"child-{i}").end()
        return 0 if lmscope.force_flush(15_000) else 2  # generous: a loaded 2-core box

    producer = threading.Thread(target=produce)
    producer.start()
    outcomes = {}
    if how.startswith("os.fork"):
        for i in range(forks):
            time.sleep(0.01)
            pid = os.fork()
            if pid == 0 and how == "os.fork+exit":  # a normal exit: atexit hooks run, lmscope's shutdown too
                sys.exit(child(i))
            if pid == 0:
                code = 1
                try:
                    code = child(i)
                finally:
                    os._exit(code)
            deadline = time.monotonic() + 60
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    outcomes[i] = os.waitstatus_to_exitcode(status)
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
                    outcomes[i] = "hung"
                    break
                time.sleep(0.005)
    else:  # multiprocessing with the fork start method (its children end with os._exit after their target)
        fork = multiprocessing.get_context("fork")
        for i in range(forks):
            time.sleep(0.01)
            process = fork.Process(target=lambda i=i: sys.exit(child(i)))
            process.start()
            process.join(60)
            if process.exitcode is None:
                process.kill()
                process.join()
                outcomes[i] = "hung"
            else:
                outcomes[i] = process.exitcode
    stop.set()
    producer.join()
    print(json.dumps(outcomes))
""")


def span_names(path: Path) -> list[str]:
    names = []
    with open(path, encoding="utf-8") as file:
        for line in file:
            for resource in json.loads(line)["resourceSpans"]:  # every line whole: json.loads never fails
                for scope in resource["scopeSpans"]:
                    names.extend(span["name"] for span in scope["spans"])
    return names


@pytest.mark.parametrize("how", ["os.fork", "os.fork+exit", "multiprocessing"])
def test_forked_children_trace_into_the_same_file_and_exit(tmp_path: Path, how: str) -> None:
    path = tmp_path / "traces.jsonl"
    # Small batches: the export worker writes every few dozen spans, so many forks land while it holds its locks.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "32"}
    done = subprocess.run([sys.executable, "-c", APP, str(path), str(FORKS), how], capture_output=True, text=True,
                          timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    outcomes = json.loads(done.stdout)
    assert outcomes == {str(i): 0 for i in range(FORKS)}, done.stderr  # none hung, every child's flush delivered
    names = span_names(path)
    assert sorted(n for n in names if n.startswith("child-")) == sorted(f"child-{i}" for i in range(FORKS))
    assert names.count("parent.work") > 0
    assert "lmscope" not in done.stderr, done.stderr  # no drop report, in the parent or any child


def test_the_sdk_batch_span_processor_renews_itself_in_a_child_as_lmscope_does() -> None:
    """The SDK's own BatchSpanProcessor (an app's, next to lmscope's) re-creates its worker in a forked child."""
    script = textwrap.dedent("""
        import os
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        provider.get_tracer("t").start_span("parent").end()
        pid = os.fork()
        if pid == 0:
            provider.get_tracer("t").start_span("child").end()
            ok = provider.force_flush(5_000) and [s.name for s in exporter.get_finished_spans()] == ["child"]
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "0", done.stderr


WORKERS_APP = textwrap.dedent("""
    import concurrent.futures, multiprocessing, sys
    import lmscope
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    path = sys.argv[1]
    trace.set_tracer_provider(TracerProvider())
    lmscope.instrument(exporters="file", file_path=path, export_all_spans=True)
    tracer = trace.get_tracer("workers-test")

    def work(name):  # no flush: the worker leaves as multiprocessing makes it, with os._exit
        tracer.start_span(name).end()
        return name

    fork = multiprocessing.get_context("fork")
    process = fork.Process(target=work, args=("process",))
    process.start()
    process.join(60)
    pool = fork.Pool(2)
    done = pool.map(work, [f"pool-{i}" for i in range(4)])
    pool.close()
    pool.join()
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=fork) as executor:
        done += list(executor.map(work, [f"executor-{i}" for i in range(4)]))
    print(process.exitcode, len(done))
""")


def test_multiprocessing_workers_deliver_their_spans_without_a_flush(tmp_path: Path) -> None:
    """A `multiprocessing` child (a Process, Pool and ProcessPoolExecutor workers, fork start method) ends with
    `os._exit`, past the atexit hook that delivers its queued spans: lmscope delivers them at its exit all the same,
    through multiprocessing's own exit finalizers (`_fork.run_at_exit`). Without it the file had none of them."""
    path = tmp_path / "traces.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", WORKERS_APP, str(path)], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "8"], done.stderr
    names = sorted(span_names(path))
    assert names == sorted(["process", *(f"pool-{i}" for i in range(4)), *(f"executor-{i}" for i in range(4))])
    assert "lmscope" not in done.stderr, done.stderr



def test_forked_children_draw_their_own_span_ids_and_retry_jitter() -> None:
    """lmscope's random generators (span ids, the OTLP/JSON exporter's retry jitter) are seeded again in a child, as
    `random`'s global one is: children do not make the parent's ids, nor wait in step after a collector's 429."""
    script = textwrap.dedent("""
        import os, sys
        from lmscope.telemetry._exporters import otlp_json_http
        from lmscope.telemetry._span_ids import ID_GENERATOR
        for _ in range(3):
            read, write = os.pipe()
            if os.fork() == 0:
                os.write(write, f"{ID_GENERATOR.generate_span_id()} {otlp_json_http._jitter.random()}".encode())
                os._exit(0)
            os.wait()
            print(os.read(read, 200).decode())
        print(f"{ID_GENERATOR.generate_span_id()} {otlp_json_http._jitter.random()}")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    drawn = [line.split() for line in done.stdout.splitlines()]
    assert len(drawn) == 4
    assert len({ids for ids, _ in drawn}) == 4 and len({jitter for _, jitter in drawn}) == 4


def test_lmscope_imports_and_traces_where_there_is_no_fork() -> None:
    """Windows has no `os.register_at_fork`: lmscope registers its fork hooks only where there is one."""
    # `random` itself registers a hook at import, unguarded (CPython has one wherever it has fork): imported first
    script = ("import os, random; del os.register_at_fork; import lmscope; lmscope.instrument(exporters='none'); "
              "print('ok')")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "ok"
