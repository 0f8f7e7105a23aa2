"""The `lmscope` command: demo, run, tree, report."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def _demo(args: argparse.Namespace) -> int:
    from ._demo import run

    return run(model=args.model, file_path=args.file,
               exporters=args.exporters.split(",") if args.exporters else None, litellm=args.litellm)


def _run(args: argparse.Namespace) -> int:
    # Only the separator goes: a `--` after the command is the command's own argument.
    command = list(args.command or [])
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        print("lmscope run: give the command to run, e.g. lmscope run -- python app.py", file=sys.stderr)
        return 2
    if args.exporters:  # checked here: in the program's process a bad value would only leave it untraced
        from .telemetry._options import check_option

        check_option("exporters", args.exporters, "--exporters")
    env = dict(os.environ)
    bootstrap = str(Path(__file__).with_name("_bootstrap"))
    original = env.get("PYTHONPATH")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [bootstrap, original]))
    # Read by the bootstrap (lmscope/_bootstrap/sitecustomize.py): without --children, the first Python process
    # puts PYTHONPATH back as it was, so only it is instrumented.
    env.pop("LMSCOPE_RUN_PYTHONPATH", None)
    if original is not None:
        env["LMSCOPE_RUN_PYTHONPATH"] = original
    env["LMSCOPE_RUN_CHILDREN"] = "1" if args.children else "0"
    if args.exporters:
        env["LMSCOPE_EXPORTERS"] = args.exporters
    os.execvpe(command[0], command, env)
    return 127  # not reached


def _tree(args: argparse.Namespace) -> int:
    from ._cli_read import tree

    return tree(args.file)


def _report(args: argparse.Namespace) -> int:
    from ._cli_read import report

    return report(args.file, args.html)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lmscope", description="OpenTelemetry for DSPy and LiteLLM programs")
    commands = parser.add_subparsers(dest="name", required=True)
    demo = commands.add_parser("demo", help="trace a 3-step RAG program against a local stand-in LM")
    demo.add_argument("--model", help="a real provider model (e.g. openai/gpt-4o-mini) instead of the stand-in")
    demo.add_argument("--litellm", action="store_true",
                      help="trace a plain LiteLLM app (completion, a stream, an embedding) instead of the DSPy program")
    demo.add_argument("--file", help="trace file path (default: LMSCOPE_FILE_PATH or lmscope-traces.jsonl)")
    demo.add_argument("--exporters", help="comma-separated exporters (default: console,file)")
    demo.set_defaults(handler=_demo)
    run = commands.add_parser("run", help="run a Python program with lmscope instrumentation, no code change")
    run.add_argument("--exporters", help="comma-separated exporters for the program (LMSCOPE_EXPORTERS)")
    run.add_argument("--children", action="store_true",
                     help="also instrument every Python process the program starts (default: only the first one)")
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- python app.py [args]")
    run.set_defaults(handler=_run)
    tree = commands.add_parser("tree", help="print the span trees in a trace file")
    tree.add_argument("file")
    tree.set_defaults(handler=_tree)
    report = commands.add_parser("report", help="tokens, cost and cache hits by model and module path")
    report.add_argument("file")
    report.add_argument("--html", metavar="OUT", help="also write a self-contained HTML page (charts, trace trees)")
    report.set_defaults(handler=_report)
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except BrokenPipeError:  # `lmscope tree FILE | head`: the reader has seen enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 0
    except (OSError, ValueError) as exc:
        print(f"lmscope {args.name}: {str(exc).removeprefix('lmscope: ')}", file=sys.stderr)  # a ConfigError's prefix
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
