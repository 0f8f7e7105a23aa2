"""URLs lose what people put tokens in (userinfo, query, fragment), and no text makes the masking slow.

These functions run on the app's thread on text lmscope does not control: exporter error messages (a backend's
error page can be megabytes) and configured endpoints. Before, `[^/@]*@` and `[a-zA-Z][a-zA-Z0-9+.-]*://` were
retried from every position: a 100,000-character path took 43 s. The megabyte inputs below would take hours then.
"""

from __future__ import annotations

import time

import pytest

from lmscope.telemetry._export_guard import safe_reason
from lmscope.telemetry._url_masking import mask_url, mask_urls_in


@pytest.mark.parametrize(("url", "masked"), [
    ("https://user:pw@collector:4318/v1/traces", "https://***@collector:4318/v1/traces"),
    ("https://user:p@ss@host/path", "https://***@host/path"),
    ("https://host/v1/traces?api_key=sk-123&x=1", "https://host/v1/traces?***"),
    ("https://host/callback#access_token=abc", "https://host/callback?***"),
    ("https://host/a@b/c", "https://host/a@b/c"),  # an @ in the path is not userinfo
    ("http://localhost:4318", "http://localhost:4318"),
    ("user:pw@host:4317", "***@host:4317"),
    ("", ""),
])
def test_mask_url_hides_userinfo_query_and_fragment(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_urls_inside_text_are_masked_and_the_rest_kept() -> None:
    text = "POST https://u:secret@h/v1?key=k failed (see http://docs/x#tok) at a://b; e-mail me@x.org, ratio 3://4"
    assert mask_urls_in(text) == (
        "POST https://***@h/v1?*** failed (see http://docs/x?***) at a://b; e-mail me@x.org, ratio 3://4")


def test_safe_reason_masks_urls_and_keeps_one_short_line() -> None:
    message = "HTTPSConnectionPool(host='h'): bad request to https://key:sk-live-123@h/v1/traces?token=t\n\n  body"
    reason = safe_reason(message)
    assert "sk-live-123" not in reason and "token=t" not in reason and "\n" not in reason
    assert "https://***@h/v1/traces?***" in reason
    assert safe_reason("code: 500, reason: see https://u:pw@h/x?k=v, then") == "HTTP 500 see https://***@h/x?***"


MEGABYTE = 1_000_000
HOSTILE = {
    "letters": "a" * MEGABYTE,
    "schemes without hosts": "a://" * (MEGABYTE // 4),
    "at signs": "@" * MEGABYTE,
    "one long url": "http://" + "a" * MEGABYTE,
    "a long path then a scheme": "x" * MEGABYTE + "://",
    "userinfo that never ends": "https://" + "u" * MEGABYTE + "@",
    "question marks": "?" * MEGABYTE,
}


@pytest.mark.parametrize("shape", sorted(HOSTILE))
def test_megabyte_inputs_are_masked_in_linear_time(shape: str) -> None:
    text = HOSTILE[shape]
    started = time.perf_counter()
    results = [mask_url(text), mask_urls_in(text), safe_reason(text), safe_reason("read timed out: " + text)]
    elapsed = time.perf_counter() - started
    # A quadratic scan of 1,000,000 characters takes hours; linear work takes milliseconds. The bound only
    # separates the two, with room for a loaded machine.
    assert elapsed < 10, f"{shape}: {elapsed:.1f} s"
    assert all(len(reason) <= 160 for reason in results[2:])
    assert results[3] == "no answer in time"
