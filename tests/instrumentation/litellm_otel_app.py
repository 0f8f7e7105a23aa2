"""The LiteLLM demo app traced by lmscope while LiteLLM's own OpenTelemetry callback is on, in a process of its own.

    python litellm_otel_app.py ORDER

ORDER: `first` (`litellm.callbacks = ["otel"]` before `lmscope.instrument()`), `after`, or `alone` (no callback:
what lmscope's spans carry without it). LiteLLM's callback exports
with OTLP/HTTP to OTEL_ENDPOINT (the test's receiver) through the global TracerProvider it sets up at the first call;
lmscope exports to a trace file and the console tree (stderr). The app's MeterProvider, set first, gets lmscope's
metrics. The process prints one JSON object: the stand-in server's bill, `track()`, lmscope's token metrics, the
trace file's spans and report, lmscope's warnings (tests/instrumentation/test_litellm_neighbours.py checks them).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from typing import Any

ORDER = sys.argv[1]
WORK = tempfile.mkdtemp(prefix="lmscope-litellm-otel-")
TRACE_FILE = os.path.join(WORK, "spans.jsonl")
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

from observed import KeptWarnings, token_sums  # noqa: E402
from opentelemetry import metrics  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402

READER = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[READER]))


WARNINGS = KeptWarnings(prefix_logger=True)
for name in ("lmscope", "opentelemetry"):  # the SDK's "Setting attribute on ended span" comes from the latter
    logging.getLogger(name).addHandler(WARNINGS)

import litellm  # noqa: E402

import lmscope  # noqa: E402
from lmscope import semconv  # noqa: E402
from lmscope._demo_litellm import run_workload  # noqa: E402
from lmscope._lm_server import StandInLM  # noqa: E402
from lmscope.telemetry._report import summarize  # noqa: E402
from lmscope.telemetry._trace_file import read_trace_file  # noqa: E402


def main() -> None:
    if ORDER == "first":
        litellm.callbacks = ["otel"]
    lmscope.instrument(exporters=["file", "console"], file_path=TRACE_FILE, capture_content=True)
    if ORDER == "after":
        litellm.callbacks = ["otel"]

    with StandInLM() as server:
        with lmscope.track() as usage:
            run_workload(server.base_url, "sk-test")
        prompt, completion = server.billed_chat_tokens
        bill = {"chat_requests": server.requests, "prompt": prompt, "completion": completion,
                "embedding_requests": server.embedding_requests, "embedding_tokens": server.embedding_tokens}
    lmscope.uninstrument()
    records = read_trace_file(TRACE_FILE)
    report = summarize(records)
    result: dict[str, Any] = {
        "bill": bill, "track": usage.total(), "metrics": token_sums(READER, semconv.METER_NAME),
        "spans": [{"name": r.name, "span_id": r.span_id, "parent": r.parent_span_id, "attributes": r.attributes}
                  for r in records],
        "report": {"calls": report.total.calls, "input_tokens": report.total.input_tokens,
                   "output_tokens": report.total.output_tokens, "unpriced": report.total.unpriced_calls},
        "warnings": WARNINGS.messages,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
