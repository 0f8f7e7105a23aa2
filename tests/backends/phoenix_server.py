"""A real `phoenix serve` on 127.0.0.1 for the Phoenix tests: own working dir (sqlite), free ports, stopped after.

arize-phoenix brings about 50 requirements (its own OpenTelemetry, SQLAlchemy, FastAPI and OpenInference
instrumentors among them) whose ranges can move against the dev extra's (mlflow, the newest SDK; today's releases
happen to agree), and lmscope's tests must not run with Phoenix's packages installed, so it lives in a venv of its
own: `.venv/phoenix`, made by .ci/test.sh, or wherever TEST_PHOENIX_VENV points. Without it the tests fail (not
skip), saying how to make it: a CI run must not pass by leaving Phoenix out.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from otlp_servers import free_port  # loaded by tests/conftest.py
from server_process import running_server  # tests/server_process.py (tests/ is on sys.path, as for otlp_servers)

VENV_ENV = "TEST_PHOENIX_VENV"
DEFAULT_VENV = Path(__file__).resolve().parents[2] / ".venv" / "phoenix"
START_TIMEOUT_S = 180  # 20-25 s on an idle 2-core machine (it runs its database migrations first)


def phoenix_command() -> Path:
    venv = Path(os.environ.get(VENV_ENV) or DEFAULT_VENV)
    command = venv / "bin" / "phoenix"
    if not command.is_file():
        raise RuntimeError(
            f"no Phoenix server to test against: {command} does not exist. .ci/test.sh (the README's test command) "
            f"makes that venv; by hand: python3 -m venv {venv} && {venv}/bin/pip install 'arize-phoenix>=20.26.1' "
            f"(or point {VENV_ENV} at a venv that has it)")
    return command


def _server_env(folder: Path, http_port: int, grpc_port: int) -> dict[str, str]:
    # Nothing from the outer shell's Phoenix or OTel settings (a PHOENIX_SQL_DATABASE_URL would point the
    # server at someone's database, OTEL_* would make it trace itself somewhere).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHOENIX_", "OTEL_", "LMSCOPE_"))}
    env.update(PHOENIX_WORKING_DIR=str(folder), PHOENIX_HOST="127.0.0.1", PHOENIX_PORT=str(http_port),
               PHOENIX_GRPC_PORT=str(grpc_port),
               # No web analytics, fonts or downloads: the machine is offline and the test must not depend on it.
               PHOENIX_TELEMETRY_ENABLED="false", PHOENIX_ALLOW_EXTERNAL_RESOURCES="false", DO_NOT_TRACK="true")
    return env


@contextmanager
def running_phoenix(folder: Path) -> Iterator[str]:
    """`phoenix serve` with its sqlite database in `folder` (PHOENIX_WORKING_DIR) and free HTTP and gRPC ports;
    yields its base URL once /healthz answers, stops it afterwards."""
    command = phoenix_command()
    http_port, grpc_port = free_port(), free_port()
    while grpc_port == http_port:
        grpc_port = free_port()
    url = f"http://127.0.0.1:{http_port}"
    with running_server("phoenix serve", [str(command), "serve"], _server_env(folder, http_port, grpc_port),
                        url + "/healthz", folder / "server.log", START_TIMEOUT_S, cwd=folder):
        yield url
