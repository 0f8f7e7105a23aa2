"""Loaded by `lmscope run -- python app.py` through PYTHONPATH: instruments the app before it starts.

It takes the place of any other `sitecustomize` (one per interpreter), so it first runs the one Python would
have imported without lmscope (the app's, a distribution's), found on sys.path without this directory. Unless
`lmscope run --children` asked for every Python process below it, the first interpreter to start takes the
bootstrap out of PYTHONPATH again, so the processes it starts in turn run untouched (`_lmscope_run` below).
"""


def _lmscope_run() -> None:
    import importlib.machinery
    import importlib.util
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    if os.environ.get("LMSCOPE_RUN_CHILDREN") != "1":
        # Only this process: its children get the PYTHONPATH the command was started with.
        original = os.environ.pop("LMSCOPE_RUN_PYTHONPATH", None)
        if original is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = original
    path = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        sys.modules["sitecustomize"] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - as `site` reports a failing sitecustomize, and goes on
            print(f"Error in sitecustomize; set PYTHONVERBOSE for traceback:\n{type(exc).__name__}: {exc}",
                  file=sys.stderr)
    try:
        import lmscope

        lmscope.instrument()
    except Exception as exc:  # noqa: BLE001 - a bad option must not stop the user's program
        print(f"lmscope run: instrumentation is off: {exc}", file=sys.stderr)


_lmscope_run()
