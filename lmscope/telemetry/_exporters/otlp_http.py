"""An OTLP/HTTP span exporter that sends exactly the headers a backend preset gives it.

The SDK's exporter merges OTEL_EXPORTER_OTLP_(TRACES_)HEADERS into every request, even next to explicit
headers. Those variables usually hold a collector's or vendor's API key: a Langfuse or MLflow preset must not
forward it to another server. The session below drops every header the preset did not name, except the ones
that describe the body.

The same goes for TLS: the exporter applies OTEL_EXPORTER_OTLP_(TRACES_)CERTIFICATE, ..._CLIENT_CERTIFICATE and
..._CLIENT_KEY, a collector's private CA and client certificate. The session keeps requests' defaults instead:
the default CA bundle (or REQUESTS_CA_BUNDLE, requests' own variable), no client certificate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

_TRANSPORT_HEADERS = frozenset({"content-type", "content-encoding", "content-length", "user-agent", "accept",
                                "accept-encoding", "connection"})


class _PinnedHeadersSession(requests.Session):
    """Sends `headers` and the transport headers, nothing else, whatever the exporter put on the request; verifies
    TLS as requests does by default, whatever CA file or client certificate the exporter gives it."""

    # The exporter sets these on its session (or, in older versions, passes them with each request): ignored.
    verify = property(lambda self: True, lambda self, value: None)
    cert = property(lambda self: None, lambda self, value: None)

    def __init__(self, headers: Mapping[str, str]) -> None:
        super().__init__()
        self._pinned = dict(headers)

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["verify"] = kwargs["cert"] = None  # None: requests merges in its defaults (and REQUESTS_CA_BUNDLE)
        return super().request(*args, **kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        for name in [name for name in request.headers if name.lower() not in _TRANSPORT_HEADERS]:
            del request.headers[name]
        request.headers.update(self._pinned)
        return super().send(request, **kwargs)


def pinned_otlp_http_exporter(url: str, headers: Mapping[str, str],
                              compression: Compression | None = None) -> OTLPSpanExporter:
    """OTLP/HTTP (protobuf) to `url` with exactly `headers`; compression None leaves OTEL_EXPORTER_OTLP_* in charge."""
    return OTLPSpanExporter(endpoint=url, headers=dict(headers), compression=compression,
                            session=_PinnedHeadersSession(headers))
