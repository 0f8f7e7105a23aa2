"""Instrumenting again and again before the app imports dspy leaves no import hook and no handle behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.usefixtures("clean_env")

APP = textwrap.dedent("""
    import gc, json, sys, weakref
    import lmscope
    import wrapt.importer

    meta_path = len(sys.meta_path) + 1  # wrapt's one finder, added by the first hook
    handles = []
    for _ in range(100):
        handles.append(weakref.ref(lmscope.instrument(exporters="none")))
        lmscope.uninstrument()
    gc.collect()
    facts = {"alive": sum(ref() is not None for ref in handles),
             "hooks": len(wrapt.importer._post_import_hooks.get("dspy") or ()),
             "meta_path_added": len(sys.meta_path) - meta_path + 1}
    handle = lmscope.instrument(exporters="none")
    import dspy  # the one hook fires for the handle that is active now
    facts["instrumented"] = handle._dspy.is_instrumented
    lmscope.uninstrument()
    facts["uninstrumented"] = not handle._dspy.is_instrumented
    print(json.dumps(facts))
""")


def test_a_hundred_cycles_before_import_dspy_leave_one_hook_and_no_handle() -> None:
    done = subprocess.run([sys.executable, "-c", APP], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"alive": 0, "hooks": 1, "meta_path_added": 1, "instrumented": True,
                                       "uninstrumented": True}
