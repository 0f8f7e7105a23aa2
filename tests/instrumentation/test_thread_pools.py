"""An app's own thread pool stays in the trace: under `lmscope.instrument()`, LiteLLM calls fanned out on a
`ThreadPoolExecutor` are children of the span that submitted them and count in its `track()` block (so are the
requests LiteLLM's `batch_completion_models_all_responses` sends on a pool it makes inside the call); the tasks and the
pool behave as without lmscope (a task runs in its worker thread's own context, where the pool's `initializer` set its
variables, and its traceback shows no frame of lmscope's), and `uninstrument()` puts `submit` back. In a fresh process,
as an app runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from app_env import app_env

APP = textwrap.dedent("""
    import contextvars, json, sys, traceback
    from concurrent.futures import ThreadPoolExecutor

    connection = contextvars.ContextVar("connection", default=None)

    def set_up_worker():
        connection.set("connection-of-this-worker")

    def variables_the_tasks_see():  # set by the pool's initializer, and by the task before
        seen = []

        def task(n):
            seen.append(connection.get())
            connection.set(f"left by task {n}")

        with ThreadPoolExecutor(max_workers=1, initializer=set_up_worker) as pool:
            for n in range(3):
                pool.submit(task, n).result()
        return seen

    def failing_task():
        raise ValueError("no answer")

    def stack_of_a_task():
        return [(frame.name, frame.filename) for frame in traceback.extract_stack()]

    def frames_of_a_failing_task():  # what a task's traceback and a stack walk from inside a task see
        with ThreadPoolExecutor(max_workers=2) as pool:
            error = pool.submit(failing_task).exception()
            stack = pool.submit(stack_of_a_task).result()
        return [[frame.name for frame in traceback.extract_tb(error.__traceback__)], stack]

    untraced_frames = frames_of_a_failing_task()
    untraced_variables = variables_the_tasks_see()
    original_submit = ThreadPoolExecutor.submit

    import lmscope
    handle = lmscope.instrument(exporters=["file"], file_path=sys.argv[2])
    import litellm
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    trace.set_tracer_provider(TracerProvider())  # the app's own spans; lmscope's file exporter gets them too

    def ask(question):
        return litellm.completion(model="openai/gpt-4o-mini", api_base=sys.argv[1], api_key="sk-anything",
                                  messages=[{"role": "user", "content": question}])

    tracer = trace.get_tracer("app")
    with lmscope.track() as usage, tracer.start_as_current_span("handler") as handler:
        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(ask, [f"Capital of country number {n}?" for n in range(4)]))
    # LiteLLM's own fan-out on a pool it makes inside the call (`concurrent.futures.ThreadPoolExecutor`)
    with lmscope.track() as fanned, tracer.start_as_current_span("fan_out") as fan_out:
        every_answer = litellm.batch_completion_models_all_responses(
            models=["openai/gpt-4o-mini", "openai/gpt-4o"], api_base=sys.argv[1], api_key="sk-anything",
            messages=[{"role": "user", "content": "Capital of Peru?"}])
    traced_frames = frames_of_a_failing_task()
    traced_variables = variables_the_tasks_see()
    handle.uninstrument()
    print(json.dumps({"total": usage.total(), "handler": format(handler.get_span_context().span_id, "016x"),
                      "fanned": fanned.total(), "fan_out": format(fan_out.get_span_context().span_id, "016x"),
                      "every_answer": [a.model for a in every_answer],
                      "answers": [a.choices[0].message.content for a in answers],
                      "frames": [untraced_frames, traced_frames],
                      "variables": [untraced_variables, traced_variables],
                      "submit_restored": ThreadPoolExecutor.submit is original_submit}))
""")


def _spans(trace_file: str) -> list[dict]:
    with open(trace_file) as lines:
        return [span for line in lines for resource in json.loads(line)["resourceSpans"]
                for scope in resource["scopeSpans"] for span in scope["spans"]]


def test_litellm_calls_on_the_apps_thread_pool_are_children_of_the_submitting_span(lm_server, tmp_path):
    trace_file = tmp_path / "traces.jsonl"
    env = app_env("LMSCOPE_", "OTEL_")
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    requests, (prompt, completion) = lm_server.requests, lm_server.billed_chat_tokens
    done = subprocess.run([sys.executable, "-c", APP, lm_server.base_url, str(trace_file)], env=env,
                          capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])

    assert all(result["answers"]) and lm_server.requests == requests + 6
    assert sorted(result["every_answer"]) == ["gpt-4o", "gpt-4o-mini"]
    spans = _spans(str(trace_file))
    calls = [span for span in spans if span["parentSpanId"] == result["handler"]]
    assert [call["name"] for call in calls] == ["chat gpt-4o-mini"] * 4
    fanned_out = [span for span in spans if span["parentSpanId"] == result["fan_out"]]
    assert sorted(call["name"] for call in fanned_out) == ["chat gpt-4o", "chat gpt-4o-mini"]
    assert len(spans) == 6 and len({span["traceId"] for span in spans}) == 2  # the handler's trace, fan_out's
    billed = lm_server.billed_chat_tokens
    total, fanned = result["total"], result["fanned"]
    assert (total["calls"] + fanned["calls"], total["input_tokens"] + fanned["input_tokens"],
            total["output_tokens"] + fanned["output_tokens"]) == (6, billed[0] - prompt, billed[1] - completion)
    assert fanned["calls"] == 2
    (untraced_traceback, untraced_stack), (traced_traceback, traced_stack) = result["frames"]
    assert traced_traceback == untraced_traceback and traced_traceback[-1] == "failing_task"
    # A stack walk from inside the task finds the frame that attaches the submitter's context, next to the task.
    (runner, runner_file), *_ = traced_stack[-2:]
    assert traced_stack[:-2] + traced_stack[-1:] == untraced_stack
    assert runner == "_run_attached" and runner_file.endswith(os.path.join("lmscope", "instrumentation",
                                                                            "_thread_pools.py"))
    assert untraced_stack[-1][0] == "stack_of_a_task"
    untraced_variables, traced_variables = result["variables"]
    assert traced_variables == untraced_variables == ["connection-of-this-worker", "left by task 0", "left by task 1"]
    assert result["submit_restored"] is True
