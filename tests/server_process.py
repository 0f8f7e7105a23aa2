"""A real backend server (mlflow server, phoenix serve) as a test fixture starts it: in its own session, ready when
its health URL answers 200, stopped with everything it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def running_server(name: str, command: Sequence[str], env: Mapping[str, str], health_url: str, log_path: Path,
                   timeout_s: float, cwd: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Runs `command` with output to `log_path`; yields once `health_url` answers 200 (RuntimeError naming `name`,
    with the log's tail, if the server exits or `timeout_s` passes first); stops it and what it started (SIGTERM,
    then SIGKILL after 30 s)."""
    with log_path.open("wb") as log:
        # Its own session: uvicorn, workers and job runners are stopped with it.
        server = subprocess.Popen(list(command), env=dict(env), cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            _wait_healthy(server, health_url, log_path, timeout_s, name)
            yield server
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def _wait_healthy(server: subprocess.Popen[bytes], health_url: str, log_path: Path, timeout_s: float,
                  name: str) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(health_url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start: {log_path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.25)
