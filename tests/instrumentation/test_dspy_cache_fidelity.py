"""lmscope's cache probe does what DSPy's `Cache.get` does, and `lmscope.settings.cache` says whether DSPy's cache
was used for the call the span describes."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any
from unittest import mock

import dspy
import httpx
import pytest

from lmscope.instrumentation.dspy import DSPyInstrumentor

SETTINGS_CACHE = "lmscope.settings.cache"


@contextlib.contextmanager
def instrumented() -> Iterator[Any]:
    """DSPy instrumented for the block, with its own TracerProvider; yields the finished-spans function."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = DSPyInstrumentor()
    instrumentor.instrument(provider.get_tracer("test"), capture_content=False)
    try:
        yield exporter.get_finished_spans
    finally:
        instrumentor.uninstrument()
        dspy.configure(lm=None)


def lm_spans(finished: Any) -> list[Any]:
    return sorted((s for s in finished if s.name.startswith("chat ")), key=lambda s: s.start_time)


@pytest.fixture
def both_tiers_off(monkeypatch: pytest.MonkeyPatch) -> Any:
    """`dspy.configure_cache` with both tiers off for the test; the session's cache is back afterwards."""
    monkeypatch.setattr(dspy, "cache", dspy.cache)  # restored on teardown
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    return dspy.cache


# --- the cache probe does what DSPy does first -----------------------------------------------------------------

def _hashes_with_tiers_off(make_lm: Any, cache: Any, question: str) -> int:
    """How many times one predictor call hashes a request, cache tiers off (as DSPy's own
    `test_disabled_cache_skips_cache_key` counts them: a spy on the cache instance's `cache_key`)."""
    dspy.configure(lm=make_lm())
    with mock.patch.object(cache, "cache_key", wraps=cache.cache_key) as cache_key_spy:
        assert dspy.Predict("question -> answer")(question=question).answer
    return cache_key_spy.call_count


def test_no_request_is_hashed_when_both_cache_tiers_are_off(make_lm: Any, unique: str, both_tiers_off: Any) -> None:
    untraced = _hashes_with_tiers_off(make_lm, both_tiers_off, f"Capital of Peru? {unique}")
    with instrumented() as spans:
        traced = _hashes_with_tiers_off(make_lm, both_tiers_off, f"Capital of Peru? {unique}")
        assert len(lm_spans(spans())) == 1
    assert traced == untraced == 0


def test_dspys_own_disabled_cache_test_passes_instrumented(both_tiers_off: Any, make_lm: Any) -> None:
    """The shape of DSPy's `tests/clients/test_lm.py::test_disabled_cache_skips_cache_key`, instrumented."""
    cache = both_tiers_off
    with instrumented(), \
            mock.patch.object(cache, "cache_key", wraps=cache.cache_key) as cache_key_spy, \
            mock.patch.object(cache, "get", wraps=cache.get) as cache_get_spy, \
            mock.patch.object(cache, "put", wraps=cache.put) as cache_put_spy:
        lm = make_lm(model_type="chat")
        lm(messages=[{"role": "user", "content": "Hello"}])
        cache_key_spy.assert_not_called()
        cache_get_spy.assert_called_once()
        cache_put_spy.assert_called_once()


# --- a request DSPy cannot hash is an expected condition, not an internal error ---------------------------------

def test_unhashable_request_skips_the_cache_quietly(spans: Any, make_lm: Any, unique: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """`httpx.Timeout` is a valid `timeout` on both engines, and not JSON: DSPy's `cache_key` raises, its `Cache.get`
    and `put` catch that and skip the cache (a DEBUG log). lmscope, whose internal errors re-raise under pytest,
    neither raises nor warns."""
    dspy.configure(lm=make_lm())
    predict = dspy.Predict("question -> answer")
    with pytest.raises(TypeError):  # the premise: DSPy cannot hash this request
        dspy.cache.cache_key({"timeout": httpx.Timeout(30.0)})
    question = f"Capital of Chile? {unique}"
    with caplog.at_level(logging.DEBUG, logger="lmscope"):
        first = predict(question=question, config={"timeout": httpx.Timeout(30.0)})
        second = predict(question=question, config={"timeout": httpx.Timeout(30.0)})
    assert first.answer and second.answer == first.answer
    assert [r for r in caplog.records if r.name.startswith("lmscope") and r.levelno > logging.DEBUG] == []
    miss, again = (dict(s.attributes) for s in lm_spans(spans()))
    assert miss["lmscope.cache.hit"] is False and again["lmscope.cache.hit"] is False  # nothing was stored
    assert again["gen_ai.usage.input_tokens"] > 0


# --- lmscope.settings.cache: whether DSPy's cache was used for that call ----------------------------------------

def test_a_normal_call_uses_the_cache(spans: Any, make_lm: Any, unique: str) -> None:
    dspy.configure(lm=make_lm())
    predict = dspy.Predict("question -> answer")
    predict(question=f"Capital of Kenya? {unique}")
    predict(question=f"Capital of Kenya? {unique}")  # a hit: the cache was used too
    miss, hit = (dict(s.attributes) for s in lm_spans(spans()))
    assert miss[SETTINGS_CACHE] is True and miss["lmscope.cache.hit"] is False
    assert hit[SETTINGS_CACHE] is True and hit["lmscope.cache.hit"] is True


def test_cache_tiers_off_is_no_cache(spans: Any, make_lm: Any, unique: str, both_tiers_off: Any) -> None:
    dspy.configure(lm=make_lm())
    dspy.Predict("question -> answer")(question=f"Capital of Norway? {unique}")
    finished = spans()
    (span,) = lm_spans(finished)
    assert span.attributes[SETTINGS_CACHE] is False
    (outermost,) = [s for s in finished if s.parent is None]  # the module span's settings agree with its call's
    assert outermost.name == "predict" and outermost.attributes[SETTINGS_CACHE] is False


def test_an_lm_without_cache_is_no_cache(spans: Any, make_lm: Any, unique: str) -> None:
    dspy.configure(lm=make_lm())  # the configured LM caches; the predictor's own LM does not
    predict = dspy.Predict("question -> answer")
    predict.set_lm(make_lm(cache=False))
    predict(question=f"Capital of Ghana? {unique}")
    (span,) = lm_spans(spans())
    assert span.attributes[SETTINGS_CACHE] is False


def test_a_call_config_without_cache_is_no_cache(spans: Any, make_lm: Any, unique: str) -> None:
    dspy.configure(lm=make_lm())
    dspy.Predict("question -> answer")(question=f"Capital of Cuba? {unique}", config={"cache": False})
    (span,) = lm_spans(spans())
    assert span.attributes[SETTINGS_CACHE] is False


# --- tracing builds no cache DSPy did not build ------------------------------------------------------------------

_NO_CACHE_APP = '''
import json, os, sys
import dspy
from dspy.utils import DummyLM
if sys.argv[1] == "traced":
    import lmscope
    lmscope.instrument(exporters="none")
dspy.configure(lm=DummyLM([{"answer": "4"}, {"answer": "5"}]))
dspy.Predict("question -> answer")(question="2+2?")
print(json.dumps({"built": "cache" in vars(dspy), "files": sorted(os.listdir(os.environ["DSPY_CACHEDIR"]))
                  if os.path.isdir(os.environ["DSPY_CACHEDIR"]) else None}))
'''


def test_tracing_builds_no_dspy_cache_the_program_never_used(tmp_path: Any) -> None:
    """DSPy 3.4 builds its cache (a disk cache under DSPY_CACHEDIR) the first time `dspy.cache` is read; a program
    whose LM never uses it must not get one, and files on disk, because it is traced. Older DSPy builds it at import:
    then both runs have it, and the comparison still holds."""
    import json
    import subprocess
    import sys

    from app_env import app_env

    seen = {}
    for way in ("plain", "traced"):
        env = app_env("LMSCOPE_", "OTEL_")
        env.update({"DSPY_CACHEDIR": str(tmp_path / way), "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
        done = subprocess.run([sys.executable, "-c", _NO_CACHE_APP, way], capture_output=True, env=env,
                              cwd=tmp_path, timeout=240)
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        seen[way] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert seen["traced"] == seen["plain"]
