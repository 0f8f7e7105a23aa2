"""What a test app observes besides spans: the warnings logged, lmscope's token metric. Shared by the apps that run
in processes of their own (`coexistence_app.py`, `litellm_otel_app.py`, which import it from their folder) and the
tests in this folder."""

from __future__ import annotations

import logging
from typing import Any

from lmscope import semconv


class KeptWarnings(logging.Handler):
    """Keeps the message of every WARNING+ record (`prefix_logger`: as "<logger name>: <message>")."""

    def __init__(self, prefix_logger: bool = False) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self._prefix = prefix_logger

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}" if self._prefix else record.getMessage())


def token_sums(reader: Any, scope: str | None = None) -> dict[str, int]:
    """Sums of the gen_ai.client.token.usage histogram by token type, from a metric reader (of meter `scope` only,
    when given)."""
    sums: dict[str, int] = {}
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data is not None else ():
        for scope_metrics in resource_metrics.scope_metrics:
            if scope is not None and scope_metrics.scope.name != scope:
                continue
            for metric in scope_metrics.metrics:
                if metric.name != semconv.METRIC_TOKEN_USAGE:
                    continue
                for point in metric.data.data_points:
                    kind = str(point.attributes.get("gen_ai.token.type"))
                    sums[kind] = sums.get(kind, 0) + int(point.sum)
    return sums
