"""What DSPy's settings were when a call ran, and which keys a `dspy.context(...)` block set.

DSPy keeps no record of the keys a context block overrides: on entry it snapshots the whole config, and
every module call enters a context of its own (docs/dspy-internals.md §3). So we wrap `Settings.context` and
keep the user's keys in the OpenTelemetry context, which reaches asyncio tasks and, through our
ParallelExecutor patch, worker threads.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
from collections.abc import Callable, Generator, Mapping
from contextlib import ContextDecorator
from contextvars import Token
from types import MappingProxyType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context

from ...telemetry import _semconv as semconv
from ...telemetry._content import ContentPolicy
from ...telemetry._memo import BoundedMemo
from ...telemetry._recorded_span import Later
from ...telemetry._scrub_rules import REDACTED
from ._attributes import is_secret_key, settings_name, sorted_overrides
from ._frames import OVERRIDES_KEY

# Keys DSPy itself sets through `settings.context(...)`; they are plumbing, not user overrides.
_INTERNAL_KEYS = frozenset({"caller_modules", "caller_predict", "send_stream", "usage_tracker", "stream_listeners",
                            "callbacks", "trace", "_lm_stream_progress", "_decision_evidence"})
_DEFAULT_POLICY = ContentPolicy()
_REPORTED = ("adapter", "cache", "track_usage", "num_threads", "max_errors", "disable_history", "async_max_workers")


def settings_snapshot(settings: Any, overrides: Mapping[str, Any], lm: Any = None, *,
                      policy: ContentPolicy = _DEFAULT_POLICY) -> Later:
    """`lmscope.settings.*`, read now and built when the returned `Later` is called (on export, for a span whose
    attributes are stored there): what may change after the call is read now (the effective settings as DSPy copies
    them, the LM's model and cache, the cache tiers); what is made of them (their types, the overrides in effect,
    scrubbing) when called.

    The attributes: `lmscope.settings.*` for the effective settings (`settings.copy()`: the global config merged with
    the active overrides): LM model, adapter, cache, the `_REPORTED` keys, then any other key the active overrides set;
    and `lmscope.settings.overrides`, the sorted override keys. `overrides` maps each key the enclosing `dspy.context`
    blocks set to the value they set: a key counts only where the value in effect is that very object, which DSPy's
    ParallelExecutor's workers inherit but an app's own thread pool does not (the OpenTelemetry context that carries
    `overrides` does reach it: the call there runs on the global settings; an override equal to a global `True` or small
    int, one object in Python, still counts there). Values that cannot be attributes (objects, None) are left out.
    Settings are not content: they are recorded whatever `capture_content` says, so nothing secret may pass. A key that
    names a credential (`is_secret_key`: `api_key`, `passwd`, `session`, `jwt`, ...) is recorded as `[REDACTED]`, as
    under a credential key in content (true and false are kept); string values are scrubbed like an exception's text
    (`password=...`, `Bearer ...`, `sk-...`, `user:pass@`) and cut to `max_content_chars`; the LM's model is scrubbed by
    shape and cut (`ContentPolicy.name`). Either redaction sets `lmscope.scrubbed=true`.

    `lm`: the LM that made the call an LM span describes (`predictor.set_lm`, `predictor(..., lm=)` and
    `dspy.context(lm=)` each pick their own); its model and cache are reported rather than the settings' LM.
    Module spans pass none and describe the settings' LM. Read per call, not memoized: two attribute reads
    cost less than a weak-keyed lookup, and a model or cache changed on the LM object shows at once."""
    copied = settings.copy()
    if lm is None:
        lm = copied.get("lm")
    cache = getattr(lm, "cache", None)
    if cache is True and not dspy_cache_tier_on():  # `dspy.configure_cache(...)` turned both tiers off
        cache = False
    return Later((_settings_of, copied, overrides, getattr(lm, "model", None), cache, policy))


def _settings_of(copied: Mapping[str, Any], overrides: Mapping[str, Any], model: Any, cache: Any,
                 policy: ContentPolicy) -> dict[str, Any]:
    get = copied.get
    applied = frozenset(key for key, value in overrides.items() if get(key) is value) if overrides else _NO_KEYS
    adapter = get("adapter")
    attributes: dict[str, Any] = {}
    scrubbed = False
    if type(model) is str:
        attributes[_LM_MODEL], scrubbed = policy.name(model)
    elif isinstance(model, _SETTING_TYPES):
        attributes[_LM_MODEL] = model
    attributes[_ADAPTER] = type(adapter).__name__ if adapter is not None else "ChatAdapter"
    if isinstance(cache, _SETTING_TYPES):
        attributes[_CACHE] = cache
    for key, name in _FIXED_NAMES:
        value = get(key)
        if isinstance(value, _SETTING_TYPES):
            attributes[name] = value
    if applied:
        for key in _other_keys(applied):
            value = get(key)
            if isinstance(value, _SETTING_TYPES):
                other_name, secret = settings_name(key)
                if secret and type(value) is not bool:
                    attributes[other_name], scrubbed = REDACTED, True
                elif type(value) is str:
                    attributes[other_name], redacted = (
                        _setting_text((policy, other_name, value)) if len(value) <= _MEMO_MAX_CHARS
                        else _scrubbed_setting((policy, other_name, value)))
                    scrubbed = scrubbed or redacted
                else:
                    attributes[other_name] = value
        attributes[semconv.SETTINGS_OVERRIDES] = sorted_overrides(applied)
    if scrubbed:
        attributes[semconv.SCRUBBED] = True
    return attributes


def _scrubbed_setting(key: tuple[ContentPolicy, str, str]) -> tuple[str, bool]:
    policy, name, value = key
    return policy.text(value, name, free_text=True)


_MEMO_MAX_CHARS = 1024
_setting_text: BoundedMemo[tuple[ContentPolicy, str, str], tuple[str, bool]] = BoundedMemo(_scrubbed_setting, 1024)
"""_setting_text((policy, attribute name, value)) -> (the value as recorded, whether a credential was redacted).

A setting's string is scrubbed as an error's text is (`free_text`: `password=...` and the shapes; a DSN or a
connection string is a setting's typical secret) and cut to `max_content_chars`. Settings repeat on every LM span
of a block: a value up to `_MEMO_MAX_CHARS` is scrubbed once (~5 µs) and looked up after (~0.2 µs); a longer one,
which the memo would keep in memory, is scrubbed each time."""


def dspy_cache_tier_on() -> bool:
    """Whether `dspy.cache` has its memory or disk tier on; with both off, DSPy's `Cache.get`/`put` do nothing.

    Read without importing DSPy; at an LM call's end it is the cache object DSPy used, unless `configure_cache`
    replaced it during the call. Read from the module's namespace, not as an attribute: DSPy 3.4 builds its cache
    (a disk cache under DSPY_CACHEDIR) the first time `dspy.cache` is read, and a program whose LMs never use it
    (a custom `BaseLM`, `DummyLM`) must not get one because it is traced. Not built yet, it is DSPy's default,
    both tiers on."""
    module = sys.modules.get("dspy")
    cache = vars(module).get("cache") if module is not None else None
    if cache is None:
        return True
    return bool(getattr(cache, "enable_memory_cache", True)) or bool(getattr(cache, "enable_disk_cache", True))


def _keys_not_read_above(overrides: frozenset[str]) -> tuple[str, ...]:
    return tuple(key for key in overrides if key not in _READ_KEYS and key != "lm")


_other_keys: BoundedMemo[frozenset[str], tuple[str, ...]] = BoundedMemo(_keys_not_read_above)
"""_other_keys(overrides) -> the override keys not among the fixed ones, in the set's iteration order (the same
every time for one set)."""

_SETTING_TYPES = (str, bool, int, float)
NO_OVERRIDES: Mapping[str, Any] = MappingProxyType({})
_NO_KEYS: frozenset[str] = frozenset()
_READ_KEYS = frozenset({"lm.model", "adapter", "cache", *_REPORTED[3:], "track_usage"})
# The fixed keys, in the order their attributes are written (none of them looks secret: checked here, once).
_LM_MODEL, _ADAPTER, _CACHE = (semconv.SETTINGS_PREFIX + key for key in ("lm.model", "adapter", "cache"))
_FIXED_NAMES = tuple((key, semconv.SETTINGS_PREFIX + key) for key in (*_REPORTED[3:], "track_usage"))
_FIXED_KEYS = tuple(key for key, _name in _FIXED_NAMES)
assert not any(is_secret_key(key) for key in _READ_KEYS)


def patch_context_generator(helper: Any) -> Callable[[], None] | None:
    """Make every `Settings.context` call record the user's keys, however it was reached; returns the undo.

    `dspy.context` is `settings.context`, a bound method taken when dspy is imported, and a user's `from dspy import
    context` (or any other name bound before we instrument) holds the same method: replacing the class or module
    attribute misses them. What every binding calls is the one `helper` function `@contextmanager` made, which builds
    a `_GeneratorContextManager` over the generator function in its closure. We swap that closure cell for
    `record_overrides(generator)` and the undo puts back the very function it held, so `@dspy.context(...)` as a
    decorator, `inspect.signature` and `__wrapped__` are untouched. Returns None (nothing patched) when `helper` is
    not such a helper; the caller then wraps the attributes instead (`wrap_settings_context`).
    """
    code, closure = getattr(helper, "__code__", None), getattr(helper, "__closure__", None)
    if code is None or not closure or code.co_freevars != ("func",):
        return None
    cell = closure[0]
    generator: Callable[..., Generator[Any, None, None]] = cell.cell_contents
    if not inspect.isgeneratorfunction(generator) or getattr(helper, "__wrapped__", None) is not generator:
        return None
    cell.cell_contents = record_overrides(generator)

    def undo() -> None:
        cell.cell_contents = generator

    return undo


def record_overrides(generator: Callable[..., Generator[Any, None, None]]) -> Callable[..., Any]:
    """The generator function of `Settings.context`, recording the user's keys for the block's duration.

    DSPy's own calls (`caller_modules=...` on every module call) get DSPy's generator itself: one plain call more."""

    @functools.wraps(generator)
    def context(self: Any, **kwargs: Any) -> Generator[Any, None, None]:
        inner = generator(self, **kwargs)
        if kwargs.keys() <= _INTERNAL_KEYS:  # DSPy's own plumbing: nothing to record
            return inner
        return _recording(inner, _user_overrides(kwargs))

    return context


def _user_overrides(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in kwargs.items() if key not in _INTERNAL_KEYS}


def _with_overrides(overrides: Mapping[str, Any]) -> Token[Context]:
    """Attach the recorded overrides of the enclosing blocks and this one's (`settings_snapshot` reads them)."""
    outer = otel_context.get_value(OVERRIDES_KEY)
    merged = {**outer, **overrides} if isinstance(outer, dict) else dict(overrides)
    return otel_context.attach(otel_context.set_value(OVERRIDES_KEY, merged))


def _recording(inner: Generator[Any, None, None], overrides: Mapping[str, Any]) -> Generator[Any, None, None]:
    """DSPy's context generator `inner`, with `overrides` added to the recorded ones while its block runs: entered
    after DSPy's entry, left before DSPy's exit, as `_OverrideScope` does. An exception from the block goes on into
    DSPy's generator, whose `finally` restores its settings and re-raises it (contextlib then restores the
    exception's traceback, as it does without us)."""
    value = next(inner)
    token = _with_overrides(overrides)
    try:
        yield value
    except BaseException as exc:
        otel_context.detach(token)
        inner.throw(exc)
        raise
    otel_context.detach(token)
    yield from inner


class _OverrideScope(ContextDecorator):
    """Enters DSPy's own context manager, then records the user's keys for the block's duration.

    A ContextDecorator like DSPy's own `@contextmanager` result, so `@dspy.context(lm=...)` on a function
    keeps working: each call of the function gets a fresh scope (`_recreate_cm`).
    """

    def __init__(self, inner: Any, overrides: Mapping[str, Any]) -> None:
        self._inner = inner
        self._overrides = overrides
        self._token: Token[Context] | None = None

    def __enter__(self) -> Any:
        value = self._inner.__enter__()
        self._token = _with_overrides(self._overrides)
        return value

    def __exit__(self, *exc_info: Any) -> Any:
        if self._token is not None:
            otel_context.detach(self._token)
        return self._inner.__exit__(*exc_info)

    def _recreate_cm(self) -> _OverrideScope:
        return _OverrideScope(self._inner._recreate_cm(), self._overrides)


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
        return _OverrideScope(inner, _user_overrides(kwargs))

    context.__doc__ = original.__doc__
    return context
