"""The demo workload under `lmscope.instrument()` with the exporters LMSCOPE_EXPORTERS names (the Phoenix test: phoenix
and file), run in its own interpreter because instrument() sets the process-wide provider.

    python phoenix_workload_app.py LM_BASE_URL SESSION_ID

The demo's four runs (fresh, cached, under dspy.context, a threaded batch) and one tool call, a step the demo has
not, all under `lmscope.context(session_id=...)`; then uninstrument(), which flushes every exporter.
"""

from __future__ import annotations

import sys


def main(lm_url: str, session_id: str) -> None:
    import lmscope

    lmscope.instrument(service_name="lmscope-phoenix-test")
    import dspy

    from lmscope._demo import build_program, keyword_search, run_workload

    lm = dspy.LM("openai/gpt-4o-mini", api_base=lm_url, api_key="sk-lmscope-test")
    dspy.configure(lm=lm)
    with lmscope.context(session_id=session_id, user_id="phoenix-user"):
        run_workload(build_program(), lm)
        print("TOOL", dspy.Tool(keyword_search)(query="Which river flows through Paris?"), flush=True)
    lmscope.uninstrument()


if __name__ == "__main__":
    main(*sys.argv[1:3])
