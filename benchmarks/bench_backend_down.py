"""Does a down, hanging or failing trace backend slow a DSPy program down, or change what it returns?

    python benchmarks/bench_backend_down.py [--calls N] [--rounds R] [--quick] [--seed S] [--json PATH]

The 3-step DSPy program of bench_overhead.py (DummyLM; its program, LM, configuration and block helpers
are imported from there) runs under lmscope's DSPy instrumentation with lmscope's real export pipeline
(`telemetry._pipeline.batch_processor`: BatchExportProcessor + GuardedExporter), once per backend:

    base          no instrumentation (for reference)
    noop          lmscope -> a no-op exporter
    otlp_ok       lmscope -> OTLP/HTTP -> a healthy local receiver
    otlp_refused  lmscope -> OTLP/HTTP -> a port nobody listens on
    otlp_hanging  lmscope -> OTLP/HTTP -> a server that accepts and never answers
    otlp_500      lmscope -> OTLP/HTTP -> a server that answers every export with 500

Blocks of every configuration run interleaved in shuffled rounds in one process; ratios are paired per
round against `noop` (the instrumented program with a backend that costs nothing). The servers run in
a separate process (tests/otlp_servers.py), so their CPU does not count against the program. The OTLP
exporter runs with its defaults (OTEL_EXPORTER_OTLP_TIMEOUT 10 s, up to 6 retries with back-off).
Healthy configurations and otlp_500 are flushed after each block, like bench_overhead.py; refused and
hanging are not (a flush cannot deliver there), so their queue stays full, the steady state of an outage.
At the end every configuration is shut down and timed: a hanging backend must not hold up the exit.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import bench_overhead as bench  # sets LITELLM_LOCAL_MODEL_COST_MAP and DSPY_CACHEDIR before dspy loads
import dspy
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter

from lmscope.instrumentation.dspy import DSPyInstrumentor
from lmscope.telemetry._batch_export import SHUTDOWN_TIMEOUT_S, BatchExportProcessor, drop_report
from lmscope.telemetry._export_guard import describe_destination
from lmscope.telemetry._exporters.otlp import otlp_span_exporter
from lmscope.telemetry._options import resolve_options
from lmscope.telemetry._pipeline import batch_processor

SERVERS = Path(__file__).resolve().parent.parent / "tests" / "otlp_servers.py"
FLUSH_TIMEOUT_MS = 5_000
REFERENCE = "noop"


@dataclass
class BackendConfig(bench.Config):
    """A bench_overhead Config whose flush is bounded, or skipped where the backend cannot take spans."""

    processor: BatchExportProcessor | None = None
    flush_after_block: bool = True

    def flush(self) -> float:
        if self.provider is None or not self.flush_after_block:
            return 0.0
        started = time.perf_counter()
        self.provider.force_flush(FLUSH_TIMEOUT_MS)
        return time.perf_counter() - started


def backend_config(name: str, describe: str, exporter: SpanExporter | None,
                   flush_after_block: bool = True) -> BackendConfig:
    counter = bench.CountingExporter(exporter)  # no exporter: a no-op one
    processor = batch_processor(counter, resolve_options(exporters="none"), name=name)
    if exporter is not None:  # the counting wrapper hides the OTLP exporter's endpoint from the guard
        processor.exporter.destination = describe_destination(exporter)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")
    instrumentor = DSPyInstrumentor()
    return BackendConfig(name, describe, lambda: instrumentor.instrument(tracer, capture_content=True),
                         instrumentor.uninstrument, provider, counter, processor=processor,
                         flush_after_block=flush_after_block)


def otlp_exporter(base_url: str) -> SpanExporter:
    return otlp_span_exporter(resolve_options(exporters="none", otlp_endpoint=base_url))


def build_configs(urls: dict[str, str]) -> list[bench.Config]:
    return [
        bench.base_config(),
        backend_config("noop", "lmscope -> no-op exporter", None),
        backend_config("otlp_ok", f"lmscope -> OTLP/HTTP -> healthy receiver {urls['ok']}", otlp_exporter(urls["ok"])),
        backend_config("otlp_refused", f"lmscope -> OTLP/HTTP -> refused {urls['refused']}",
                       otlp_exporter(urls["refused"]), flush_after_block=False),
        backend_config("otlp_hanging", f"lmscope -> OTLP/HTTP -> hanging server {urls['hanging']}",
                       otlp_exporter(urls["hanging"]), flush_after_block=False),
        backend_config("otlp_500", f"lmscope -> OTLP/HTTP -> HTTP 500 server {urls['failing']}",
                       otlp_exporter(urls["failing"])),
    ]


def shutdown_while_first_export_hangs(url: str) -> float:
    """Seconds a shutdown takes while the first export to a hanging server is still on the wire.

    In the timed run the hanging backend is known to be down by the end (its exports time out after 10 s),
    and a known-down backend is not waited for. This is the other case: an app that exits within its
    first 10 s of talking to a wedged collector."""
    processor = batch_processor(otlp_exporter(url), resolve_options(exporters="none"), name="otlp_hanging_exit")
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")
    for _ in range(600):  # more than a batch: the worker puts 512 on the wire
        tracer.start_span("work").end()
    time.sleep(0.2)
    begun = time.perf_counter()
    provider.shutdown()
    return time.perf_counter() - begun


class LogCounter(logging.Handler):
    """Counts WARNING+ records by logger name; keeps lmscope's own messages."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.by_logger: dict[str, int] = {}
        self.lmscope: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.by_logger[record.name] = self.by_logger.get(record.name, 0) + 1
        if record.name == "lmscope":
            self.lmscope.append(record.getMessage())


def start_servers() -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen([sys.executable, str(SERVERS)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    urls = json.loads(proc.stdout.readline())
    sys.path.insert(0, str(SERVERS.parent))
    from otlp_servers import refused_url

    urls["refused"] = refused_url()
    return proc, urls


def stop_servers(proc: subprocess.Popen[str]) -> dict[str, int]:
    out, _ = proc.communicate("", timeout=30)
    return json.loads(out.strip().splitlines()[-1])


def _quantile(values: Sequence[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e3


@dataclass
class Result:
    name: str
    median_us: float
    p99_us: float
    max_us: float
    ratio: tuple[float, float, float] | None  # paired per round vs REFERENCE: median, min, max
    cpu_ratio: float | None
    spans: int
    exported: int
    dropped: str
    shutdown_s: float | None


def summarize(config: bench.Config, reference: bench.Config, spans_made: int, shutdown_s: float | None) -> Result:
    ratio = cpu = None
    if config.name != reference.name and config.name != "base":
        ratio = bench._med_min_max([c / r for c, r in zip(config.block_medians, reference.block_medians)])
        cpu = statistics.median([c / r for c, r in zip(config.block_cpu_medians, reference.block_cpu_medians)])
    dropped = "-"
    if isinstance(config, BackendConfig) and config.processor is not None:
        stats = config.processor.stats()
        dropped = (f"{stats.dropped:,} (full {stats.queue_full:,}, failed {stats.export_failed:,}, "
                   f"unsent {stats.unsent_at_shutdown:,})")
    return Result(config.name, statistics.median(config.per_call_ns) / 1e3, _quantile(config.per_call_ns, 0.99),
                  max(config.per_call_ns) / 1e3, ratio, cpu, spans_made,
                  config.counter.spans if config.counter else 0, dropped, shutdown_s)


def print_results(results: list[Result]) -> None:
    lines = [["config", "µs/call median", "p99", "max", f"ratio vs {REFERENCE} (paired median; min-max)",
              f"main-thread CPU ratio vs {REFERENCE}", "spans made", "handed to exporter",
              "dropped (queue full, export failed, unsent)", "shutdown s"]]
    for r in results:
        lines.append([
            r.name, f"{r.median_us:,.0f}", f"{r.p99_us:,.0f}", f"{r.max_us:,.0f}",
            "-" if r.ratio is None else f"{r.ratio[0]:.3f} ({r.ratio[1]:.2f}-{r.ratio[2]:.2f})",
            "-" if r.cpu_ratio is None else f"{r.cpu_ratio:.3f}",
            f"{r.spans:,}" if r.spans else "-", f"{r.exported:,}" if r.spans else "-", r.dropped,
            "-" if r.shutdown_s is None else f"{r.shutdown_s:.2f}",
        ])
    bench._print_markdown(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bench.add_block_arguments(parser, "a smaller run, about 20 s")
    return bench.parse_block_arguments(parser, argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    print(f"lmscope backend-down benchmark — {bench.machine_note()}")
    logs = LogCounter()
    logging.getLogger().addHandler(logs)
    servers, urls = start_servers()

    lm = bench.make_lm()
    dspy.configure(lm=lm)
    program = bench.RAG()
    bench.import_patched_dspy_modules()
    program(question=bench.QUESTIONS[0])  # DSPy's own lazy imports, before the snapshot
    snapshot = bench.DSPySnapshot()
    spans_per_call = bench.capture_lmscope_shape(program, snapshot)[0].size()
    configs = build_configs(urls)
    for config in configs:
        print(f"  {config.name:<13} {config.describe}")
    runner = bench.Bench(program, lm, snapshot, configs, lambda: None, 0)
    print(f"  {args.rounds} rounds x {args.calls} calls per configuration, after {bench.WARMUP_CALLS} warm-up "
          f"calls; blocks shuffled per round (seed {args.seed}); ratios paired per round vs {REFERENCE}\n")
    runner.warm_up(bench.WARMUP_CALLS)
    runner.run(args.rounds, args.calls, args.seed, progress=sys.stderr.isatty())

    shutdown_s: dict[str, float] = {}
    for config in runner.configs:
        if isinstance(config, BackendConfig) and config.provider is not None:
            begun = time.perf_counter()
            config.provider.shutdown()
            shutdown_s[config.name] = time.perf_counter() - begun
    mid_hang_s = shutdown_while_first_export_hangs(urls["hanging"])
    calls_made = bench.WARMUP_CALLS + args.rounds * args.calls
    reference = next(c for c in runner.configs if c.name == REFERENCE)
    results = [summarize(c, reference, calls_made * spans_per_call if c.name != "base" else 0,
                         shutdown_s.get(c.name)) for c in runner.configs]
    print_results(results)
    counts = stop_servers(servers)
    ok = next(r for r in results if r.name == "otlp_ok")
    print(f"\nhealthy receiver got {counts['received_spans']:,} spans of {ok.exported:,} handed to its exporter "
          f"({'OK' if counts['received_spans'] == ok.exported else 'MISMATCH'}); 500 server answered "
          f"{counts['failing_posts']:,} exports; hanging server held {counts['hanging_connections']} connections")
    print(f"shutdown while the first export to the hanging server is on the wire: {mid_hang_s:.2f} s "
          f"(bound SHUTDOWN_TIMEOUT_S = {SHUTDOWN_TIMEOUT_S:g} s per setup, all exporters in parallel)")
    others = {name: n for name, n in logs.by_logger.items() if name != "lmscope"}
    print(f"\nWARNING+ log records: lmscope {len(logs.lmscope)}, others {others or 'none'}")
    for message in logs.lmscope:
        print(f"  {message}")
    processors = [c.processor for c in runner.configs if isinstance(c, BackendConfig) and c.processor]
    print(f"drop report as lmscope writes it at exit:\n  {drop_report(processors)}")
    print(f"\ntotal run time {time.perf_counter() - started:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": bench.machine_note(), "rounds": args.rounds, "calls": args.calls,
                       "results": [vars(r) for r in results], "servers": counts, "mid_hang_shutdown_s": mid_hang_s,
                       "lmscope_warnings": logs.lmscope, "other_warnings": others}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
