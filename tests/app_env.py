"""The environment of an app a test starts: the test's own without the variables of the given prefixes (the app sets
up lmscope or the backends from scratch), keeping this suite's switch that makes lmscope re-raise its own faults
(lmscope/telemetry/_internal_errors.py), so that a fault in the app fails the test as it would in-process.

Import it as `from app_env import app_env` (tests/ is on sys.path through tests/conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from lmscope.telemetry._internal_errors import RAISE_VARIABLE


def app_env(*prefixes: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) without the variables starting with one of `prefixes`."""
    source = os.environ if base is None else base
    return {name: value for name, value in source.items() if not name.startswith(prefixes) or name == RAISE_VARIABLE}
