"""Loaded by `lmscope run -- python app.py` through PYTHONPATH: instruments the app before it starts."""

try:
    import lmscope

    lmscope.instrument()
except Exception as exc:  # noqa: BLE001 - a bad option must not stop the user's program
    import sys

    print(f"lmscope run: instrumentation is off: {exc}", file=sys.stderr)
