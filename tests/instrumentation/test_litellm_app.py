"""A plain LiteLLM app under `lmscope.instrument()`, in a fresh process: LiteLLM is patched when the app imports it
(never by lmscope), every call is in the trace file, and `track()` and `lmscope report` agree with the server's
bill."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from app_env import app_env

APP = textwrap.dedent("""
    import json, sys
    import lmscope
    handle = lmscope.instrument(exporters=["file"], file_path=sys.argv[2], capture_content=True)
    assert "litellm" not in sys.modules  # instrumenting imports nothing
    import litellm
    base = sys.argv[1]
    ask = dict(model="openai/gpt-4o-mini", api_base=base, api_key="sk-anything")
    with lmscope.track() as usage:
        answer = litellm.completion(messages=[{"role": "user", "content": "Capital of France?"}], **ask)
        stream = litellm.completion(messages=[{"role": "user", "content": "Capital of Japan?"}], stream=True,
                                    stream_options={"include_usage": True}, **ask)
        streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        vectors = litellm.embedding(model="openai/text-embedding-3-small", input=["Paris"], api_base=base,
                                    api_key="sk-anything")
    handle.uninstrument()
    print(json.dumps({"total": usage.total(), "prompt": answer.usage.prompt_tokens,
                      "completion": answer.usage.completion_tokens, "embedded": vectors.usage.prompt_tokens}))
""")


def test_a_litellm_app_is_traced_counted_and_reported(lm_server, tmp_path):
    trace_file = tmp_path / "traces.jsonl"
    env = app_env("LMSCOPE_", "OTEL_")
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    before = (lm_server.requests, lm_server.embedding_tokens)
    done = subprocess.run([sys.executable, "-c", APP, lm_server.base_url, str(trace_file)], env=env,
                          capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert lm_server.requests == before[0] + 2  # the completion and the stream
    embedded = lm_server.embedding_tokens - before[1]
    assert result["embedded"] == embedded

    spans = [span for line in trace_file.read_text().splitlines()
             for resource in json.loads(line)["resourceSpans"] for scope in resource["scopeSpans"]
             for span in scope["spans"]]
    assert sorted(span["name"] for span in spans) == [
        "chat gpt-4o-mini", "chat gpt-4o-mini", "embeddings text-embedding-3-small"]
    total = result["total"]
    assert total["calls"] == 3
    assert total["input_tokens"] >= result["prompt"] + embedded  # plus the stream's prompt

    report = subprocess.run([sys.executable, "-m", "lmscope", "report", str(trace_file)], capture_output=True,
                            text=True, timeout=60, env=env)
    assert report.returncode == 0, report.stderr
    assert report.stdout.startswith("3 LM calls in 3 traces")
    rows = {line.split()[0]: line.split()[1:] for line in report.stdout.splitlines() if line.strip()}
    assert rows["gpt-4o-mini"][0] == "2" and rows["text-embedding-3-small"][:2] == ["1", str(embedded)]
    assert rows["total"][0] == "3" and int(rows["total"][1]) == total["input_tokens"]


BOUND_BEFORE = textwrap.dedent("""
    import sys
    from litellm import completion, embedding as embed  # bound before lmscope patches LiteLLM
    import lmscope
    lmscope.instrument(exporters="none")
    import litellm
    assert litellm.completion is not completion  # the package attribute is traced; these names are not
""")


def test_names_bound_before_instrumenting_are_named_in_one_warning(tmp_path):
    """`from litellm import completion` before `lmscope.instrument()`: calls through that name are untraced, and
    `track()` would count none of them; the warning names each such name once (it was silent)."""
    env = app_env("LMSCOPE_", "OTEL_")
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    done = subprocess.run([sys.executable, "-c", BOUND_BEFORE], env=env, capture_output=True, text=True, timeout=180,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "bound LiteLLM's functions" in line]
    assert warnings == ["lmscope: __main__.completion, __main__.embed bound LiteLLM's functions by name before "
                        "lmscope.instrument(): their calls are not traced. Call lmscope.instrument() before `from "
                        "litellm import ...`, or call them as litellm.<name>(...), or start the app with `lmscope run`"]
    instrumented_first = subprocess.run([sys.executable, "-c", "import lmscope\nlmscope.instrument(exporters='none')\n"
                                         "from litellm import completion\n"], env=env, capture_output=True, text=True,
                                        timeout=180, cwd=tmp_path)
    assert instrumented_first.returncode == 0 and "bound LiteLLM" not in instrumented_first.stderr
