"""JSON text of captured values, with one encoder built once per `default` instead of once per value.

`json.dumps(value, default=..., ensure_ascii=False)` builds a JSONEncoder per call, and even a shared encoder's
`encode` builds a new C encoder per call (~0.6 µs); an LM span encodes three to five values. The output is
`json.dumps`'s to the byte (same separators, `ensure_ascii=False`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def make_encoder(default: Callable[[Any], Any]) -> Callable[[Any], str]:
    """`value -> json.dumps(value, ensure_ascii=False, default=default)`, made once.

    The C encoder is made without circular-reference markers: those are state shared by every call, which threads
    would trip over. A cycle then ends in RecursionError instead of ValueError: callers that may meet one catch both.
    """
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is None:  # no C accelerator (PyPy): the standard encoder, same output
        return json.JSONEncoder(ensure_ascii=False, default=default).encode
    encoder = c_make_encoder(None, default, json.encoder.encode_basestring, None, ": ", ", ", False, False, True)
    join = "".join
    return lambda value: join(encoder(value, 0))


def writable_int(value: int) -> int | str:
    """`value`, or `<int of N bits>` for an int too long to write in decimal: str() and JSON raise ValueError past
    `sys.get_int_max_str_digits()` digits (4,300 unless the app set another limit)."""
    try:
        int.__repr__(value)
    except ValueError:
        return f"<int of {value.bit_length()} bits>"
    return value
