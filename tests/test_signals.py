"""SIGTERM and SIGINT: queued spans are delivered (or counted) first, and the app's own signal handling is unchanged.

Real processes: an app ends spans in a tight loop into lmscope's file exporter and writes the number of each span
it ended to a progress file; the test sends it a signal once it runs. Before lmscope/_signals.py a SIGTERM with
the default action lost every queued span without a word.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.usefixtures("clean_env"),
              pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")]

APP = textwrap.dedent("""
    import os, signal, sys
    import lmscope
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    path, progress, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "app-handler":
        def on_term(signum, frame):
            print("app handler got", signum, flush=True)
            sys.exit(3)
        signal.signal(signal.SIGTERM, on_term)
    trace.set_tracer_provider(TracerProvider())  # the app's own, without exporters of its own
    if mode != "bare":  # the app's spans go to lmscope's file (they are not lmscope's: export_all_spans)
        lmscope.instrument(exporters="file", file_path=path, export_all_spans=True)
    tracer = trace.get_tracer("signal-test")
    done = os.open(progress, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    i = 0
    while True:
        tracer.start_span("work", attributes={"i": i}).end()
        os.write(done, b"%d\\n" % i)
        i += 1
""")


def _signals_as_a_terminal_gives_them() -> None:
    """In the child before it starts Python: SIGINT's default action. A shell without job control starts background
    commands (`bash .ci/run &`) with SIGINT ignored, which their children inherit, and Python then installs no
    KeyboardInterrupt handler: the app would never see the signal this test sends."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_until_signal(tmp_path: Path, mode: str, signum: int) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run the app until it has ended 5,000 spans, send `signum`; returns the outcome and the spans it ended."""
    progress = tmp_path / "progress.txt"
    process = subprocess.Popen([sys.executable, "-c", APP, str(tmp_path / "traces.jsonl"), str(progress), mode],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
                               preexec_fn=_signals_as_a_terminal_gives_them)
    deadline = time.monotonic() + 120
    while (not progress.exists() or progress.stat().st_size < 30_000) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    ended = len(progress.read_text().splitlines())
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), ended


def exported_spans(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [span for line in path.read_text(encoding="utf-8").splitlines()
            for resource in json.loads(line)["resourceSpans"] for scope in resource["scopeSpans"]
            for span in scope["spans"]]


def exported(path: Path) -> list[int]:
    return sorted(int(span["attributes"][0]["value"]["intValue"]) for span in exported_spans(path))


def not_exported(stderr: str) -> int:
    found = re.search(r"lmscope: ([\d,]+) spans were not exported", stderr)
    return int(found.group(1).replace(",", "")) if found else 0


def assert_nothing_lost(tmp_path: Path, ended: int, stderr: str) -> None:
    numbers = exported(tmp_path / "traces.jsonl")
    assert numbers == list(range(len(numbers)))  # no gap, no duplicate
    # Every span ended before the signal is in the file or counted (one more may have ended after the last note).
    assert ended - not_exported(stderr) <= len(numbers) <= ended + 1
    assert ended >= 5_000


def test_sigterm_with_the_default_action_delivers_queued_spans_then_dies_by_the_signal(tmp_path: Path) -> None:
    done, ended = run_until_signal(tmp_path, "default", signal.SIGTERM)
    assert done.returncode == -signal.SIGTERM, done.stderr
    assert_nothing_lost(tmp_path, ended, done.stderr)


def test_sigterm_still_reaches_the_apps_own_handler(tmp_path: Path) -> None:
    done, ended = run_until_signal(tmp_path, "app-handler", signal.SIGTERM)
    assert (done.returncode, done.stdout) == (3, f"app handler got {int(signal.SIGTERM)}\n"), done.stderr
    assert_nothing_lost(tmp_path, ended, done.stderr)


def test_sigint_still_raises_keyboard_interrupt(tmp_path: Path) -> None:
    (tmp_path / "bare").mkdir()
    bare, _ = run_until_signal(tmp_path / "bare", "bare", signal.SIGINT)
    done, ended = run_until_signal(tmp_path, "default", signal.SIGINT)
    # Python ends an uncaught KeyboardInterrupt by dying of SIGINT (3.8+): the same status, with or without lmscope.
    assert done.returncode == bare.returncode == -signal.SIGINT
    assert done.stderr.splitlines()[-1] == bare.stderr.splitlines()[-1] == "KeyboardInterrupt"
    assert_nothing_lost(tmp_path, ended, done.stderr)


HANDLERS = textwrap.dedent("""
    import signal, lmscope

    def app_handler(signum, frame):
        pass

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, app_handler)
    lmscope.instrument(exporters="file", file_path=__import__("sys").argv[1])
    during = (signal.getsignal(signal.SIGTERM) == signal.SIG_IGN, signal.getsignal(signal.SIGINT) is app_handler)
    lmscope.uninstrument()
    after = (signal.getsignal(signal.SIGTERM) == signal.SIG_IGN, signal.getsignal(signal.SIGINT) is app_handler)
    lmscope.instrument(exporters="none")  # no export: no handler
    print(during, after, signal.getsignal(signal.SIGINT) is app_handler)
""")


def test_an_ignored_signal_stays_ignored_and_uninstrument_restores_the_handlers(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", HANDLERS, str(tmp_path / "t.jsonl")], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.stdout.strip() == "(True, False) (True, True) True", done.stderr


INSIDE_ON_END = textwrap.dedent("""
    import os, signal, sys, time
    import lmscope
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    trace.set_tracer_provider(TracerProvider())  # the app's, whose spans lmscope's file gets (export_all_spans)
    handle = lmscope.instrument(exporters="file", file_path=sys.argv[1], export_all_spans=True)
    for i in range(100):
        trace.get_tracer("t").start_span("work").end()
    # As if the signal came while on_end held the processor's lock, or `instrument()` the registry's: the handler
    # must not wait for itself.
    held = {"processor": handle._tracing.processors[0]._lock, "registry": handle._tracing._registry._lock}[sys.argv[2]]
    with held:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.5)
    time.sleep(30)  # the handler's second try comes within milliseconds
    print("still alive")
""")


@pytest.mark.parametrize("lock", ["processor", "registry"])
def test_a_signal_that_interrupts_lmscopes_own_locked_section_comes_back_after_it(tmp_path: Path, lock: str) -> None:
    """The registry's lock was missing from those the handler looks at: its shutdown then waited for it, on top of
    the frame holding it, for good (the `with multiprocessing.Pool()` hang, test below)."""
    path = tmp_path / "t.jsonl"
    done = subprocess.run([sys.executable, "-c", INSIDE_ON_END, str(path), lock], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == -signal.SIGTERM, done.stderr
    assert len(exported_spans(path)) == 100


DURING_EXIT = textwrap.dedent("""
    import atexit, os, signal, sys, threading
    import lmscope
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    trace.set_tracer_provider(TracerProvider())
    lmscope.instrument(exporters="file", file_path=sys.argv[1], export_all_spans=True)
    tracer = trace.get_tracer("t")
    for i in range(15_000):  # all queued until the exit: a batch is 20,000 spans, the delay a minute
        tracer.start_span("work", attributes={"i": i, "text": "x" * 200}).end()
    # atexit runs the last registered first: this starts right before lmscope's exit hook delivers the queue.
    signum = getattr(signal, sys.argv[2])
    atexit.register(lambda: threading.Timer(0.05, os.kill, (os.getpid(), signum)).start())
""")


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_signal_during_the_exit_delivery_waits_for_it_then_ends_the_process(tmp_path: Path, signame: str) -> None:
    """What `Pool.terminate()` does to a worker that is delivering its spans at exit: a SIGTERM in the middle of
    lmscope's exit shutdown. The handler used to find the shutdown begun, skip it and end the process at once,
    losing what was still being written; now the signal waits for that shutdown and then ends the process. A Ctrl-C
    there (SIGINT, which lmscope leaves to Python's own handler until the exit delivery begins) waits for it too."""
    path = tmp_path / "t.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "20000",
           "OTEL_BSP_MAX_QUEUE_SIZE": "20000", "OTEL_BSP_SCHEDULE_DELAY": "60000"}
    done = subprocess.run([sys.executable, "-c", DURING_EXIT, str(path), signame], capture_output=True, text=True,
                          timeout=120, env=env, preexec_fn=_signals_as_a_terminal_gives_them)
    if signame == "SIGTERM":
        assert done.returncode == -signal.SIGTERM, done.stderr
    else:  # KeyboardInterrupt in an exit hook: Python prints it, ignores it and ends as it was ending
        assert "KeyboardInterrupt" in done.stderr
    assert len(exported_spans(path)) == 15_000


def run_work_in_a_child(context: str = 'multiprocessing.get_context("fork")', args: str = "()") -> str:
    """Ends a script that defines `work`: runs it in a `multiprocessing` child, prints its exit status or "hung"."""
    return textwrap.dedent(f"""
        process = {context}.Process(target=work, args={args})
        process.start()
        process.join(30)
        if process.exitcode is None:
            process.kill()
            process.join()
        print("hung" if process.exitcode == -signal.SIGKILL else process.exitcode)
    """)


EXIT_HOOK_HOLDS_THE_REGISTRY = textwrap.dedent("""
    import multiprocessing, os, signal, sys, time
    import lmscope
    from lmscope.telemetry import _tracer_provider
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    trace.set_tracer_provider(TracerProvider())
    lmscope.instrument(exporters="file", file_path=sys.argv[1], export_all_spans=True)

    class SignalledWhileHeld:
        # The registry's lock, as `Pool.terminate()` finds it in a worker that got its sentinel: the worker's exit
        # hook (`shutdown_all`) holds it when the SIGTERM comes. Python runs the handler while the lock is held.
        def __init__(self, lock):
            self.lock = lock
        def acquire(self, blocking=True, timeout=-1):
            return self.lock.acquire(blocking, timeout)
        def release(self):
            self.lock.release()
        def __enter__(self):
            self.lock.acquire()
            if sys._getframe(1).f_code.co_name == "shutdown_all":
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.3)
        def __exit__(self, *exc):
            self.lock.release()

    def work():  # ends its span, returns: multiprocessing's exit finalizers then run lmscope's exit hook
        registry = _tracer_provider._REGISTRY
        registry._lock = SignalledWhileHeld(registry._lock)
        trace.get_tracer("t").start_span("worker").end()

""") + run_work_in_a_child()


def test_a_sigterm_while_a_workers_exit_hook_holds_the_registry_lock_delivers_then_ends_the_worker(
        tmp_path: Path) -> None:
    """One cause of the `with multiprocessing.Pool()` hang: `terminate()` signalled a worker that had just got
    its sentinel while its exit hook held the registry's lock for a moment. The handler's shutdown took that lock
    too, on top of the frame holding it, and waited for itself for good. The handler now sees that lock taken and
    sends the signal again a moment later, as for its other locks: by then the exit hook delivers the span, and the
    worker ends (by the signal, or with its own exit status when it gets to `os._exit` before the signal is sent
    again, as the worker that got a sentinel would have a moment later anyway)."""
    path = tmp_path / "t.jsonl"
    done = subprocess.run([sys.executable, "-c", EXIT_HOOK_HOLDS_THE_REGISTRY, str(path)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.stdout.strip() in {"0", str(-signal.SIGTERM)}, done.stderr
    assert [span["name"] for span in exported_spans(path)] == ["worker"]


STUCK_DELIVERY = textwrap.dedent("""
    import os, signal, sys, threading, time
    import lmscope
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    trace.set_tracer_provider(TracerProvider())
    handle = lmscope.instrument(exporters="file", file_path=sys.argv[1], export_all_spans=True)
    for i in range(100):
        trace.get_tracer("t").start_span("work").end()
    held = threading.Lock()  # a lock lmscope knows nothing about, which its exporter's close needs
    exporter = handle._tracing.processors[0].exporter
    close = exporter.shutdown
    def shutdown(*args, **kwargs):
        with held:
            close(*args, **kwargs)
    exporter.shutdown = shutdown
    with held:  # the signal comes while the app holds it: the delivery cannot end
        start = time.monotonic()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(60)
    print("still alive")
""")


def test_a_delivery_stuck_on_a_lock_the_interrupted_code_holds_ends_the_process_after_the_bound(
        tmp_path: Path) -> None:
    """Whatever the handler's own delivery waits for, it waits at most `_SHUTDOWN_WAIT_S`: its watchdog signals again,
    and the handler Python runs on top of the stuck one hands the signal on. What was exported before stays."""
    from lmscope._signals import _SHUTDOWN_WAIT_S

    path = tmp_path / "t.jsonl"
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-c", STUCK_DELIVERY, str(path)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    took = time.monotonic() - began
    assert done.returncode == -signal.SIGTERM, (done.stdout, done.stderr)
    assert _SHUTDOWN_WAIT_S <= took < 50
    assert len(exported_spans(path)) == 100  # written by the last flush, before the exporter's close got stuck


EARLY_IN_THE_CHILD = textwrap.dedent("""
    import os, signal, sys, time
    import lmscope
    lmscope.instrument(exporters="file", file_path=sys.argv[1])
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # the child runs only once the parent lets the CPU go
    outcomes = []
    for i in range(3):
        pid = os.fork()
        if pid == 0:
            time.sleep(5)  # the handler missed the signal: the child is still here when this ends
            os._exit(7)
        os.kill(pid, signal.SIGTERM)  # before the child has run at all
        outcomes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    print(outcomes)
""")


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="pins the parent and its children to one CPU (Linux)")
def test_a_sigterm_that_reaches_a_child_before_python_has_set_it_up_still_ends_it(tmp_path: Path) -> None:
    """What `Pool.terminate()` did to a worker forked a moment earlier that a loaded machine had not run yet: CPython
    clears the signals noted but not handled yet right after a fork, so the handler never saw the SIGTERM and the
    worker went on to wait for tasks for good (the default action, without lmscope, kills it in the kernel). lmscope
    now holds the signal blocked across the fork, so it comes in once the child is set up."""
    done = subprocess.run([sys.executable, "-c", EARLY_IN_THE_CHILD, str(tmp_path / "t.jsonl")], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.stdout.strip() == str([-signal.SIGTERM] * 3), done.stderr


WAIT_NOT_INTERRUPTED = textwrap.dedent("""
    import multiprocessing, signal, sys, threading, time
    import lmscope
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    trace.set_tracer_provider(TracerProvider())
    lmscope.instrument(exporters="file", file_path=sys.argv[1], export_all_spans=True)
    held = multiprocessing.Lock()  # as the pool's task-queue lock: the parent holds it, the worker waits for it

    def send_here():
        time.sleep(0.2)
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
        time.sleep(60)

    def work():
        trace.get_tracer("t").start_span("worker").end()
        # The C handler runs on another thread, as when the SIGTERM comes while the main thread is entering its
        # wait: CPython notes it, and nothing interrupts the wait it handles signals after.
        threading.Thread(target=send_here, daemon=True).start()
        held.acquire()

    held.acquire()
""") + run_work_in_a_child()


def test_a_sigterm_that_does_not_interrupt_a_multiprocessing_workers_wait_still_ends_it(tmp_path: Path) -> None:
    """The other half of the `with multiprocessing.Pool()` hang: `terminate()` signalled a worker as it went back to
    the task queue's lock (held by the parent for good by then). The signal came before the wait began, so it did
    not interrupt it, and the handler, which runs only between bytecodes of the main thread, never ran. In a
    `multiprocessing` child lmscope now reads the signals CPython notes (its wakeup fd) and sends one whose handler
    did not begin within 0.1 s again to the main thread, which ends its wait: the worker delivers and dies."""
    path = tmp_path / "t.jsonl"
    done = subprocess.run([sys.executable, "-c", WAIT_NOT_INTERRUPTED, str(path)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.stdout.strip() == str(-signal.SIGTERM), done.stderr
    assert [span["name"] for span in exported_spans(path)] == ["worker"]


FORKED_DURING_A_DELIVERY = textwrap.dedent("""
    import os, signal, sys, threading, time
    import lmscope
    from lmscope import _signals

    signum = getattr(signal, sys.argv[2])
    def on_signal(signum, frame):
        raise KeyboardInterrupt  # the app's own: it ends the child below, and the parent's wait
    signal.signal(signum, on_signal)  # lmscope delivers on it (Python's own SIGINT handler it leaves till exit)
    lmscope.instrument(exporters="file", file_path=sys.argv[1])
    statuses = []

    def fork_a_child():
        pid = os.fork()
        if pid == 0:
            try:
                os.kill(os.getpid(), signum)
                time.sleep(3)
            except KeyboardInterrupt:
                os._exit(2)
            os._exit(7)  # the signal never reached the app
        statuses.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))

    parent = os.getpid()
    target = _signals._target
    real_flush = target.flush

    def flush_while_another_thread_forks():  # as a Pool's worker handler starts a worker meanwhile
        if os.getpid() == parent:  # the child's own delivery forks no more
            forking = threading.Thread(target=fork_a_child)
            forking.start()
            forking.join()
        return real_flush()

    target.flush = flush_while_another_thread_forks
    try:
        os.kill(os.getpid(), signum)
        time.sleep(10)
    except KeyboardInterrupt:
        print(statuses)
""")


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_child_forked_while_the_parent_delivers_on_a_signal_still_gets_that_signal(tmp_path: Path,
                                                                                      signame: str) -> None:
    """The parent's delivery is on the stack of its main thread, which a child forked by another thread (a `Pool`'s
    worker handler replacing a worker, say) does not have: the child took it for a delivery of its own under way,
    and dropped that signal for good (a Pool worker so never ended on `terminate()`)."""
    done = subprocess.run([sys.executable, "-c", FORKED_DURING_A_DELIVERY, str(tmp_path / "t.jsonl"), signame],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.stdout.strip() == "[2]", (done.stdout, done.stderr)


SPAWNED_WORKER_WAITS = textwrap.dedent("""
    import multiprocessing, signal, sys, threading, time
    import lmscope
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    trace.set_tracer_provider(TracerProvider())
    lmscope.instrument(exporters="file", file_path=sys.argv[2], export_all_spans=True)  # in each spawned child too

    def send_here():
        time.sleep(0.3)
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
        time.sleep(60)

    def work(held):
        trace.get_tracer("t").start_span("worker").end()
        threading.Thread(target=send_here, daemon=True).start()  # see WAIT_NOT_INTERRUPTED
        held.acquire()

    if __name__ == "__main__":
        context = multiprocessing.get_context(sys.argv[1])
        held = context.Lock()
        held.acquire()
""") + textwrap.indent(run_work_in_a_child("context", "(held,)"), "    ")


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_a_sigterm_that_does_not_interrupt_the_wait_of_a_spawned_worker_still_ends_it(tmp_path: Path,
                                                                                      method: str) -> None:
    """As above, in a child of the other start methods (macOS's default; forkserver is Linux's from Python 3.14),
    which instruments itself anew when it imports the app's main module: it was not watched, and stayed in its
    wait for good."""
    script = tmp_path / "app.py"
    script.write_text(SPAWNED_WORKER_WAITS)
    path = tmp_path / "t.jsonl"
    done = subprocess.run([sys.executable, str(script), method, str(path)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.stdout.strip() == str(-signal.SIGTERM), done.stderr
    assert [span["name"] for span in exported_spans(path)] == ["worker"]


ASYNCIO_CTRL_C = textwrap.dedent("""
    import asyncio, sys
    import lmscope
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    trace.set_tracer_provider(TracerProvider())
    if sys.argv[2] == "traced":
        lmscope.instrument(exporters="file", file_path=sys.argv[1], export_all_spans=True)

    async def main():
        trace.get_tracer("t").start_span("before").end()
        print("ready", flush=True)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            return "graceful"

    print(asyncio.run(main()))
""")


def _ctrl_c_in_asyncio_run(path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    process = subprocess.Popen([sys.executable, "-c", ASYNCIO_CTRL_C, str(path), mode], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, preexec_fn=_signals_as_a_terminal_gives_them,
                               env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_ctrl_c_in_asyncio_run_cancels_the_main_task_as_without_lmscope(tmp_path: Path) -> None:
    """`asyncio.run` turns Ctrl-C into a cancellation of the main task only over Python's own SIGINT handler: lmscope's
    in its place made it a KeyboardInterrupt in the loop. SIGINT is now lmscope's only once the exit delivery begins,
    and the spans are delivered at exit all the same."""
    bare = _ctrl_c_in_asyncio_run(tmp_path / "bare.jsonl", "bare")
    traced = _ctrl_c_in_asyncio_run(tmp_path / "traced.jsonl", "traced")
    assert (bare.returncode, bare.stdout) == (0, "graceful\n"), bare.stderr
    assert (traced.returncode, traced.stdout) == (0, "graceful\n"), traced.stderr
    assert [span["name"] for span in exported_spans(tmp_path / "traced.jsonl")] == ["before"]
