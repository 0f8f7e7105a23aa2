"""Loaded by `lmscope run -- python app.py` through PYTHONPATH: instruments the app before it starts.

It takes the place of any other `sitecustomize` (one per interpreter), so it first runs the one Python would
have imported without lmscope (the app's, a distribution's), found on sys.path without this directory. Unless
`lmscope run --children` asked for every Python process below it, the first interpreter to start takes the
bootstrap out of PYTHONPATH again, so the processes it starts in turn run untouched (`_lmscope_run` below).
Next to `opentelemetry-instrument`, in either order, see lmscope/_run_otel.py.
"""


def _lmscope_run() -> None:
    import importlib.machinery
    import importlib.util
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    children = os.environ.get("LMSCOPE_RUN_CHILDREN") == "1"
    # The `opentelemetry-instrument` launcher execs the app with OpenTelemetry's sitecustomize in front of this one:
    # here it only hands its command to `lmscope run`, which then comes first (lmscope/_run_otel.py).
    launcher = os.path.basename(sys.argv[0] if sys.argv else "").removesuffix(".exe") == "opentelemetry-instrument"
    if launcher or not children:
        # Only this process: its children get the PYTHONPATH the command was started with.
        original = os.environ.pop("LMSCOPE_RUN_PYTHONPATH", None)
        if original is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = original
    if launcher:
        from lmscope._run_otel import behind_launcher

        os.environ.pop("LMSCOPE_RUN_CHILDREN", None)
        sys.argv[:] = behind_launcher(sys.argv, children)

    def find_sitecustomize(*skip: str) -> importlib.machinery.ModuleSpec | None:
        """The sitecustomize `site` would import if sys.path had none of the directories `skip`."""
        path = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) not in skip]
        return importlib.machinery.PathFinder.find_spec("sitecustomize", path)

    def run_sitecustomize(spec: importlib.machinery.ModuleSpec | None) -> None:
        if spec is None or spec.loader is None:
            return
        module = importlib.util.module_from_spec(spec)
        sys.modules["sitecustomize"] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - as `site` reports a failing sitecustomize, and goes on
            print(f"Error in sitecustomize; set PYTHONVERBOSE for traceback:\n{type(exc).__name__}: {exc}",
                  file=sys.stderr)

    first = find_sitecustomize(here)
    # `opentelemetry-instrument` put its directory on PYTHONPATH (in front of the app's): its sitecustomize sets the
    # distro's SDK up, and runs no other sitecustomize.
    origin = first.origin or "" if first is not None else ""
    opentelemetry = os.path.normcase(origin).endswith(os.path.normcase(
        os.path.join(os.sep + "opentelemetry", "instrumentation", "auto_instrumentation", "sitecustomize.py")))
    if opentelemetry and not launcher:
        from lmscope._run_otel import entry_point_off

        with entry_point_off():  # lmscope.instrument() below patches DSPy, with lmscope's metrics and options
            run_sitecustomize(first)
        run_sitecustomize(find_sitecustomize(here, os.path.dirname(os.path.abspath(origin))))  # the one it shadowed
        if children:
            # Its initialize() puts its directory back first on PYTHONPATH: in front of this one, which the
            # processes the app starts would then never run.
            rest = [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                    if entry and os.path.abspath(entry) != here]
            os.environ["PYTHONPATH"] = os.pathsep.join([here, *rest])
    else:
        run_sitecustomize(first)
    if launcher:
        return
    try:
        import lmscope

        lmscope.instrument()
    except Exception as exc:  # noqa: BLE001 - a bad option must not stop the user's program
        print(f"lmscope run: instrumentation is off: {exc}", file=sys.stderr)
        if opentelemetry:
            from lmscope._run_otel import instrument_as_opentelemetry_would

            instrument_as_opentelemetry_would()


_lmscope_run()
