"""The app tests/test_dspy_releases.py runs on every DSPy release: the demo's RAG program under `lmscope.instrument()`,
writing a trace file. Run by the Python of the venv under test, so it imports only what every release's venv has.

    python dspy_release_app.py LM_BASE_URL TRACE_FILE

The demo's four runs (fresh, cached, under `dspy.context(...)`, a threaded batch) on LiteLLM, the one engine every
DSPy 3.x has. Prints one JSON line: the DSPy version and the lmscope package that ran.
"""

from __future__ import annotations

import json
import sys


def main(lm_url: str, trace_file: str) -> None:
    import lmscope

    lmscope.instrument(service_name="lmscope-dspy-releases", exporters=["file"], file_path=trace_file)
    import dspy
    from dspy_release import engine_options  # beside this file: the script's folder is on sys.path

    from lmscope._demo import build_program, run_workload

    # `engine="litellm"` on DSPy 3.4+; nothing before 3.4, whose dspy.LM would hand an `engine` keyword on to the
    # provider.
    lm = dspy.LM("openai/gpt-4o-mini", api_base=lm_url, api_key="sk-lmscope-test", **engine_options("litellm"))
    dspy.configure(lm=lm)
    run_workload(build_program(), lm)
    lmscope.uninstrument()  # flushes the trace file
    print(json.dumps({"dspy": dspy.__version__, "lmscope": lmscope.__file__}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
