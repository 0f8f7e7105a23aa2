"""Which MLflow experiment traces land in: an id as given, or a name looked up (and created) on the server.

MLflow's OTLP endpoint files every span under the experiment named by the `x-mlflow-experiment-id` header.
A name is turned into that id through the tracking server's REST API, the way `mlflow.set_experiment`
does it: get by name, create when missing. That needs the server up, so it happens at the first export,
in the export thread, and is retried at the next one if the server was down; instrument() never waits on it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

DEFAULT_EXPERIMENT_ID = "0"
"""MLflow's "Default" experiment, where MLflow itself logs when no experiment is named."""

_GET_BY_NAME = "/api/2.0/mlflow/experiments/get-by-name?experiment_name="
_CREATE = "/api/2.0/mlflow/experiments/create"
_TIMEOUT_S = 10.0


class ExperimentUnavailable(Exception):
    """The experiment id could not be had now (server down, refused, deleted experiment); try again later."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuses every redirect: urllib would resend the Authorization header to whatever host a 3xx names."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _call(url: str, headers: Mapping[str, str], body: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One REST call; MLflow's JSON error body becomes an ExperimentUnavailable naming its error_code."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET",
                                     headers={**headers, "Content-Type": "application/json"})
    try:
        with _OPENER.open(request, timeout=_TIMEOUT_S) as response:
            answer: dict[str, Any] = json.loads(response.read() or b"{}")
            return answer
    except urllib.error.HTTPError as error:
        if 300 <= error.code < 400:  # the redirect handler declined it: the 3xx surfaces here
            error.close()
            raise ExperimentUnavailable(
                f"HTTP {error.code} redirect not followed (it would carry the credentials elsewhere); set "
                "MLFLOW_TRACKING_URI to the server's final address") from None
        try:
            code = json.loads(error.read()).get("error_code", "")
        except (ValueError, AttributeError):
            code = ""
        raise ExperimentUnavailable(f"HTTP {error.code} {code}".strip()) from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise ExperimentUnavailable(str(reason)) from None


def resolve_experiment_id(tracking_uri: str, headers: Mapping[str, str], name: str) -> str:
    """The id of experiment `name` on the server, creating the experiment if it does not exist."""
    base = tracking_uri.rstrip("/")
    for _ in range(2):  # a second round only when another process created it between our two calls
        try:
            found = _call(base + _GET_BY_NAME + quote(name, safe=""), headers)["experiment"]
        except ExperimentUnavailable as problem:
            if "RESOURCE_DOES_NOT_EXIST" not in str(problem):
                raise
        else:
            if found.get("lifecycle_stage") == "deleted":
                raise ExperimentUnavailable(f"experiment {name!r} is deleted; restore it or name another one")
            return str(found["experiment_id"])
        try:
            return str(_call(base + _CREATE, headers, {"name": name})["experiment_id"])
        except ExperimentUnavailable as problem:
            if "RESOURCE_ALREADY_EXISTS" not in str(problem):
                raise
    raise ExperimentUnavailable(f"experiment {name!r} could be neither found nor created")
