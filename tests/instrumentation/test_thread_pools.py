"""An app's own thread pool stays in the trace: under `lmscope.instrument()`, LiteLLM calls fanned out on a
`ThreadPoolExecutor` are children of the span that submitted them and count in its `track()` block (so are the
requests LiteLLM's `batch_completion_models_all_responses` sends on a pool it makes inside the call); the tasks and the
pool behave as without lmscope (tracebacks and stack walks from a task show no frame of lmscope's), and
`uninstrument()` puts `submit` back. In a fresh process, as an app runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

APP = textwrap.dedent("""
    import json, sys, traceback
    from concurrent.futures import ThreadPoolExecutor

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
    handle.uninstrument()
    print(json.dumps({"total": usage.total(), "handler": format(handler.get_span_context().span_id, "016x"),
                      "fanned": fanned.total(), "fan_out": format(fan_out.get_span_context().span_id, "016x"),
                      "every_answer": [a.model for a in every_answer],
                      "answers": [a.choices[0].message.content for a in answers],
                      "frames": [untraced_frames, traced_frames],
                      "submit_restored": ThreadPoolExecutor.submit is original_submit}))
""")


def _spans(trace_file: str) -> list[dict]:
    with open(trace_file) as lines:
        return [span for line in lines for resource in json.loads(line)["resourceSpans"]
                for scope in resource["scopeSpans"] for span in scope["spans"]]


def test_litellm_calls_on_the_apps_thread_pool_are_children_of_the_submitting_span(lm_server, tmp_path):
    trace_file = tmp_path / "traces.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LMSCOPE_", "OTEL_"))}
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
    untraced, traced = result["frames"]
    assert traced == untraced and traced[0][-1] == "failing_task" and traced[1][-1][0] == "stack_of_a_task"
    assert result["submit_restored"] is True
