"""What DSPy's settings were when a call ran, and which keys a `dspy.context(...)` block set.

DSPy keeps no record of the keys a context block overrides: on entry it snapshots the whole config, and
every module call enters a context of its own (dspy-internals §1.3). So we wrap `Settings.context` and
keep the user's keys in the OpenTelemetry context, which reaches asyncio tasks and, through our
ParallelExecutor patch, worker threads.
"""

from __future__ import annotations

import contextlib
import inspect
from contextlib import ContextDecorator
from typing import Any, Callable

from opentelemetry import context as otel_context

from ...telemetry import _semconv as semconv
from ._attributes import is_secret_key, settings_name, sorted_overrides
from ._frames import OVERRIDES_KEY

# Keys DSPy itself sets through `settings.context(...)`; they are plumbing, not user overrides.
_INTERNAL_KEYS = frozenset({"caller_modules", "caller_predict", "send_stream", "usage_tracker", "stream_listeners",
                            "callbacks", "trace", "_lm_stream_progress", "_decision_evidence"})
_REPORTED = ("adapter", "cache", "track_usage", "num_threads", "max_errors", "disable_history", "async_max_workers")


SettingsSnapshot = tuple
"""(lm.model, lm.cache, adapter class name, the `_FIXED_NAMES` values, the other overridden keys' values,
override keys): only what `settings_attributes` reports, so a span holds no reference to the config itself."""


def settings_snapshot(settings: Any, overrides: frozenset[str]) -> SettingsSnapshot:
    """What `settings_attributes` needs, read now from `settings.copy()` (global config merged with overrides)."""
    get = settings.copy().get
    lm, adapter = get("lm"), get("adapter")
    return (getattr(lm, "model", None), getattr(lm, "cache", None),
            type(adapter).__name__ if adapter is not None else "ChatAdapter", tuple(map(get, _FIXED_KEYS)),
            tuple(map(_reported, map(get, _other_keys(overrides)))) if overrides else (), overrides)


def _reported(value: Any) -> Any:
    """A setting's value if it can be an attribute, else None: a snapshot holds no user object until export."""
    return value if isinstance(value, _SETTING_TYPES) else None


def settings_attributes(snapshot: SettingsSnapshot) -> dict[str, Any]:
    """`lmscope.settings.*` for the effective settings: LM model, adapter, cache, the `_REPORTED` keys, then any
    other key the active overrides set, never a secret-looking one; and `lmscope.settings.overrides`, the sorted
    override keys."""
    model, cache, adapter, fixed, others, overrides = snapshot
    attributes: dict[str, Any] = {}
    if model is not None and isinstance(model, _SETTING_TYPES):
        attributes[_LM_MODEL] = model
    attributes[_ADAPTER] = adapter
    if cache is not None and isinstance(cache, _SETTING_TYPES):
        attributes[_CACHE] = cache
    for (_key, name), value in zip(_FIXED_NAMES, fixed):
        if value is not None and isinstance(value, _SETTING_TYPES):
            attributes[name] = value
    if overrides:
        for key, value in zip(_other_keys(overrides), others):
            if value is not None and isinstance(value, _SETTING_TYPES):
                name = settings_name(key)
                if name is not None:
                    attributes[name] = value
        attributes[semconv.SETTINGS_OVERRIDES] = sorted_overrides(overrides)
    return attributes


_other_keys_memo: dict[frozenset[str], tuple[str, ...]] = {}


def _other_keys(overrides: frozenset[str]) -> tuple[str, ...]:
    """The override keys not among the fixed ones, in the set's iteration order (the same every time for one set)."""
    keys = _other_keys_memo.get(overrides)
    if keys is None:
        if len(_other_keys_memo) >= 4096:
            _other_keys_memo.clear()
        keys = _other_keys_memo[overrides] = tuple(key for key in overrides if key not in _READ_KEYS and key != "lm")
    return keys


_SETTING_TYPES = (str, bool, int, float)
_READ_KEYS = frozenset({"lm.model", "adapter", "cache", *_REPORTED[3:], "track_usage"})
# The fixed keys, in the order their attributes are written (none of them looks secret: checked here, once).
_LM_MODEL, _ADAPTER, _CACHE = (semconv.SETTINGS_PREFIX + key for key in ("lm.model", "adapter", "cache"))
_FIXED_NAMES = tuple((key, semconv.SETTINGS_PREFIX + key) for key in (*_REPORTED[3:], "track_usage"))
_FIXED_KEYS = tuple(key for key, _name in _FIXED_NAMES)
assert not any(is_secret_key(key) for key in _READ_KEYS)


class _OverrideScope(ContextDecorator):
    """Enters DSPy's own context manager, then records the user's keys for the block's duration.

    A ContextDecorator like DSPy's own `@contextmanager` result, so `@dspy.context(lm=...)` on a function
    keeps working: each call of the function gets a fresh scope (`_recreate_cm`).
    """

    def __init__(self, inner: Any, keys: frozenset[str]) -> None:
        self._inner = inner
        self._keys = keys
        self._token: object | None = None

    def __enter__(self) -> Any:
        value = self._inner.__enter__()
        outer = otel_context.get_value(OVERRIDES_KEY) or frozenset()
        self._token = otel_context.attach(otel_context.set_value(OVERRIDES_KEY, outer | self._keys))
        return value

    def __exit__(self, *exc_info: Any) -> Any:
        if self._token is not None:
            otel_context.detach(self._token)
        return self._inner.__exit__(*exc_info)

    def _recreate_cm(self) -> _OverrideScope:
        return _OverrideScope(self._inner._recreate_cm(), self._keys)


def wrap_settings_context(original: Callable[..., Any]) -> Callable[..., Any]:
    # `Settings.context` is `@contextmanager` over a generator function; its `helper` only builds a
    # `_GeneratorContextManager`. Building it here instead keeps DSPy's own calls (Module.__call__ enters
    # `context(caller_modules=...)` on every call, 9 calls per 3-step program call) one Python call deep, as without us.
    generator = getattr(original, "__wrapped__", None)
    make = getattr(contextlib, "_GeneratorContextManager", None)
    if generator is None or make is None or not inspect.isgeneratorfunction(generator):
        make, generator = None, None

    def context(self: Any, **kwargs: Any) -> Any:
        inner = make(generator, (self,), kwargs) if make is not None else original(self, **kwargs)
        if kwargs.keys() <= _INTERNAL_KEYS:  # DSPy's own plumbing: nothing to record
            return inner
        return _OverrideScope(inner, frozenset(kwargs) - _INTERNAL_KEYS)

    context.__doc__ = original.__doc__
    return context
