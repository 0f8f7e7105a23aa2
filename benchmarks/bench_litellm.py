"""What lmscope adds to a plain LiteLLM call, next to OpenInference's LiteLLM instrumentor; and to a long stream.

    python benchmarks/bench_litellm.py [--rounds R] [--calls N] [--quick]

`litellm.completion(..., mock_response=...)` answers without a network, through LiteLLM's whole call path. In
shuffled rounds of blocks, each configuration is switched on, timed for N calls and switched off, so machine noise
hits them alike and each round gives a paired difference against the uninstrumented base:

    base           no instrumentation
    lmscope        lmscope's LiteLLMInstrumentor -> SDK TracerProvider -> BatchSpanProcessor(no-op)
    openinference  openinference-instrumentation-litellm -> the same provider setup

Goals (issue 13): lmscope's program-thread overhead per call at most 1/3 of OpenInference's; consuming a
10,000-chunk stream at most 20% slower than uninstrumented; memory flat over 100,000 calls (RSS at start and end,
`--memory`). A measurement, not a test: the exit code is 0 even when a goal FAILs.
"""

from __future__ import annotations

import os

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

import argparse
import gc
import importlib.metadata
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import litellm
from bench_overhead import CountingExporter, batch_provider

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
ANSWER = "Paris is the capital of France."
STREAM_CHUNKS = 10_000
STREAM_TEXT = "".join(f"{i % 1000:03d}" for i in range(STREAM_CHUNKS))
"""LiteLLM's mock streams 3 characters a chunk, and fails a stream that repeats one chunk: no two in a row alike."""
GOAL_OI_FRACTION = 1 / 3
GOAL_STREAM_SLOWDOWN = 0.20


@dataclass
class Config:
    name: str
    switch_on: Callable[[], None] = lambda: None
    switch_off: Callable[[], None] = lambda: None
    block_medians: list[float] = field(default_factory=list)  # µs per call, one per round


def configs() -> list[Config]:
    from openinference.instrumentation.litellm import LiteLLMInstrumentor as OpenInferenceLiteLLM

    from lmscope.instrumentation.litellm import LiteLLMInstrumentor

    ours, theirs = LiteLLMInstrumentor(), OpenInferenceLiteLLM()
    ours_provider, theirs_provider = batch_provider(CountingExporter()), batch_provider(CountingExporter())
    return [
        Config("base"),
        Config("lmscope", lambda: ours.instrument(tracer=ours_provider.get_tracer("bench"), capture_content=True,
                                                  skip_dep_check=True), ours.uninstrument),
        Config("openinference", lambda: theirs.instrument(tracer_provider=theirs_provider, skip_dep_check=True),
               theirs.uninstrument),
    ]


def call_once() -> Any:
    return litellm.completion(model="openai/gpt-4o-mini", messages=MESSAGES, mock_response=ANSWER)


def consume_stream() -> int:
    stream = litellm.completion(model="openai/gpt-4o-mini", messages=MESSAGES, stream=True,
                                mock_response=STREAM_TEXT)
    return sum(1 for _chunk in stream)


def timed_block(work: Callable[[], Any], calls: int) -> float:
    times = []
    for _ in range(calls):
        started = time.perf_counter_ns()
        work()
        times.append(time.perf_counter_ns() - started)
    return statistics.median(times) / 1e3


def run(all_configs: list[Config], work: Callable[[], Any], rounds: int, calls: int, seed: int) -> None:
    rng = random.Random(seed)
    for config in all_configs:  # warm-up, untimed
        config.switch_on()
        timed_block(work, max(2, calls // 5))
        config.switch_off()
    for _ in range(rounds):
        order = list(all_configs)
        rng.shuffle(order)
        for config in order:
            config.switch_on()
            config.block_medians.append(timed_block(work, calls))
            config.switch_off()
            gc.collect()


def paired_overhead(config: Config, base: Config) -> float:
    return statistics.median(c - b for c, b in zip(config.block_medians, base.block_medians, strict=True))


def report(title: str, all_configs: list[Config]) -> dict[str, float]:
    base = all_configs[0]
    print(f"\n{title}")
    print(f"  {'config':<14} {'µs/call (median of block medians)':>34} {'overhead µs (paired median)':>28}")
    overheads = {}
    for config in all_configs:
        overhead = 0.0 if config is base else paired_overhead(config, base)
        overheads[config.name] = overhead
        print(f"  {config.name:<14} {statistics.median(config.block_medians):>34,.0f} "
              f"{'-' if config is base else f'{overhead:+,.0f}':>28}")
    return overheads


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def memory_run(calls: int) -> None:
    from lmscope.instrumentation.litellm import LiteLLMInstrumentor

    instrumentor = LiteLLMInstrumentor()
    instrumentor.instrument(tracer=batch_provider(CountingExporter()).get_tracer("bench"), capture_content=True,
                            skip_dep_check=True)
    for _ in range(1_000):
        call_once()
    gc.collect()
    start = _rss_mb()
    for _ in range(calls):
        call_once()
    gc.collect()
    print(f"\nmemory: RSS {start:.1f} MB after 1,000 warm-up calls, {_rss_mb():.1f} MB after {calls:,} more "
          f"(peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MB)")
    instrumentor.uninstrument()


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--quick", action="store_true", help="5 rounds, fewer calls, 3 stream rounds")
    parser.add_argument("--memory", type=int, metavar="CALLS", help="also: RSS over this many calls (100000)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rounds, calls, stream_rounds = (5, 20, 2) if args.quick else (args.rounds, args.calls, 4)
    print(f"lmscope LiteLLM benchmark: litellm {importlib.metadata.version('litellm')}, "
          f"{rounds} rounds x {calls} calls, mock_response (no network)")

    call_configs = configs()
    run(call_configs, call_once, rounds, calls, args.seed)
    overheads = report("one completion call", call_configs)
    ratio = overheads["lmscope"] / overheads["openinference"] if overheads["openinference"] > 0 else float("inf")
    print(f"  [{verdict(ratio <= GOAL_OI_FRACTION)}] lmscope / openinference = {overheads['lmscope']:+,.0f} / "
          f"{overheads['openinference']:+,.0f} µs = {ratio:.2f} (goal <= {GOAL_OI_FRACTION:.2f})")

    stream_configs = [c for c in configs() if c.name != "openinference"]
    run(stream_configs, consume_stream, stream_rounds, 1, args.seed)
    stream = report(f"a {STREAM_CHUNKS:,}-chunk stream, consumed", stream_configs)
    base_us = statistics.median(stream_configs[0].block_medians)
    slowdown = stream["lmscope"] / base_us
    print(f"  [{verdict(slowdown <= GOAL_STREAM_SLOWDOWN)}] lmscope adds {slowdown:.1%} to consuming the stream "
          f"(goal <= {GOAL_STREAM_SLOWDOWN:.0%})")
    if args.memory:
        memory_run(args.memory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
