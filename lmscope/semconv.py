"""The attribute, span-kind and metric names lmscope writes: the published half of its span contract.

    from lmscope import semconv
    span.attributes[semconv.MODULE_PATH]        # "rag.answer.predict"

These names are public and stable; every module under `lmscope` whose name starts with an underscore, and all of
`lmscope.telemetry` and `lmscope.instrumentation` but what their `__init__` exports, is internal.
"""

from .telemetry._semconv import *  # noqa: F403
from .telemetry._semconv import __all__ as __all__
