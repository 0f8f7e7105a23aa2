"""`lmscope report` on a ~1 GB trace file: wall time and peak RSS against the goals (< 30 s, < 500 MB).

    python benchmarks/bench_report_large.py                 # 1024 MB, in a temp dir, deleted afterwards
    python benchmarks/bench_report_large.py --size-mb 256   # smaller, when disk or time is short
    python benchmarks/bench_report_large.py --command tree  # `lmscope tree FILE > /dev/null` instead

The file is lmscope-shaped (tests/big_trace_file.py): RAG traces of 9 spans with prompt-sized content, 50
traces per line as the batch exporter writes them (~2.2 KB a span, ~470,000 spans a GB). The report runs in a
child process, so its peak RSS is the child's alone (`RUSAGE_CHILDREN`; this process only writes the file).
The exit code is 0 even when a goal FAILs: it is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the file generator the tests use too

from big_trace_file import SPANS_PER_TRACE, write_trace_file

GOAL_SECONDS = 30.0
GOAL_RSS_MB = 500.0
MB = 1024 * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1024, help="size of the generated file (default 1024)")
    parser.add_argument("--command", choices=("report", "tree"), default="report")
    parser.add_argument("--dir", help="where to write the file (default: a temp dir)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        path = Path(directory) / "big.jsonl"
        started = time.perf_counter()
        lines, traces = write_trace_file(path, args.size_mb * MB)
        size = path.stat().st_size
        print(f"generated {size / MB:,.0f} MB: {lines:,} lines, {traces:,} traces, {traces * SPANS_PER_TRACE:,} spans "
              f"in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "lmscope", args.command, str(path)], capture_output=True,
                              text=True, check=False)
        seconds = time.perf_counter() - started
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # kilobytes on Linux
    if done.returncode:
        print(f"lmscope {args.command} failed ({done.returncode}): {done.stderr}")
    elif args.command == "report":
        print(done.stdout.splitlines()[0])
    print(f"lmscope {args.command}: {seconds:.1f} s wall ({size / MB / seconds:,.0f} MB/s), peak RSS {rss_mb:,.0f} MB")
    goals = (("wall time", seconds, GOAL_SECONDS, "s"), ("peak RSS", rss_mb, GOAL_RSS_MB, "MB"))
    for what, measured, goal, unit in goals:
        print(f"  {what}: {measured:,.1f} {unit} (goal < {goal:,.0f} {unit}): {'PASS' if measured < goal else 'FAIL'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
