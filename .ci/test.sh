#!/usr/bin/env bash
# The test command of README.md: installs everything the tests need into .venv, type-checks and lints the
# package, runs the fast tests once more on the oldest version of every dependency lmscope declares, then the whole
# suite on the newest. The tests start their own servers (the stand-in LM server, MLflow, Phoenix, Prometheus) on
# 127.0.0.1; Phoenix runs from a venv of its own (.venv/phoenix, made below).
# Every step runs even when an earlier one failed, so one CI run reports everything; the suite runs last and
# its exit code is the script's, unless it passed and an earlier step failed (then 1).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests drive for real: Prometheus (server and promtool) and headless Chromium.
apt_packages=()
command -v prometheus >/dev/null && command -v promtool >/dev/null || apt_packages+=(prometheus)
command -v chromium >/dev/null || apt_packages+=(chromium)
if [ "${#apt_packages[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi
export LITELLM_LOCAL_MODEL_COST_MAP=True

failed=()

# Runs pytest with the venv's `pytest` script, never `python -m pytest`: that would put the repository root on
# sys.path, where the `telemetry` and `instrumentation` symlinks would import as top-level packages.
# pytest's exit code 5 (no test collected) is a failure too.
run_pytest() {
    local status=0
    "$@" || status=$?
    if [ "$status" -eq 5 ]; then
        echo "pytest collected no tests: failing on purpose" >&2
        status=1
    fi
    return "$status"
}

# --- the oldest versions lmscope declares ---------------------------------------------------------------------
# Every `>=` floor of pyproject.toml's runtime dependencies and of LiteLLM (.ci/floor_pins.py), pinned: the dev
# extra is installed around them. opentelemetry-api, -sdk and -exporter-otlp must declare one floor (one release).
# Only the fast tests run (`-m "not slow"`): the version-dependent code paths are all among them.
floors=$(grep -oE '"opentelemetry-(api|sdk|exporter-otlp)>=[0-9.]+"' pyproject.toml | grep -oE '[0-9][0-9.]*' | sort -u)
if [ "$(printf '%s\n' "$floors" | wc -l)" -ne 1 ] || [ -z "$floors" ]; then
    echo "pyproject.toml: opentelemetry-api, -sdk and -exporter-otlp must declare one floor (found: $floors)" >&2
    exit 1
fi
mapfile -t floor_pins < <(python3 .ci/floor_pins.py)
floor_venv=.venv/floor  # inside .venv: ignored by git, ruff and mypy like .venv itself
python3 -m venv "$floor_venv"
"$floor_venv/bin/python" -m pip install --quiet --upgrade pip
"$floor_venv/bin/python" -m pip install --quiet -e '.[dev]' "${floor_pins[@]}"
echo "--- tests on the oldest declared versions (${floor_pins[*]}), without the slow ones" >&2
run_pytest "$floor_venv/bin/pytest" -q -m "not slow" "$@" || failed+=("pytest on the declared floors")

# --- Phoenix, for tests/backends/test_phoenix.py ----------------------------------------------------------------
# arize-phoenix brings about 50 requirements (OpenTelemetry, SQLAlchemy, FastAPI, OpenInference instrumentors) whose
# ranges can move against the dev extra's, and lmscope's tests must not run with them installed: it gets a venv of its
# own, next to the floor one, and the test starts `phoenix serve` from there (TEST_PHOENIX_VENV). The floor is the
# newest release when the preset was written, so the test reads the REST API of a known version or a later one.
# About 80 s the first time on a 2-core machine, 25 s when the venv is reused.
phoenix_venv=.venv/phoenix
phoenix_requirement='arize-phoenix>=20.26.1'
python3 -m venv "$phoenix_venv"
"$phoenix_venv/bin/python" -m pip install --quiet --upgrade pip
"$phoenix_venv/bin/python" -m pip install --quiet "$phoenix_requirement" || failed+=("installing $phoenix_requirement")
"$phoenix_venv/bin/python" -m pip list 2>/dev/null | grep -E '^arize-phoenix ' >&2 || true
export TEST_PHOENIX_VENV="$PWD/$phoenix_venv"

# --- the newest SDK ----------------------------------------------------------------------------------------
python3 -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
# The newest SDK, also when .venv is reused from an earlier run (a fresh clone gets the newest anyway).
python -m pip install --quiet -e '.[dev]' --upgrade opentelemetry-api opentelemetry-sdk opentelemetry-exporter-otlp
python -m pip list 2>/dev/null | grep -E '^opentelemetry-(api|sdk) ' >&2
echo "--- mypy --strict (pyproject.toml [tool.mypy])" >&2
mypy || failed+=("mypy")
echo "--- ruff check" >&2
ruff check || failed+=("ruff check")

echo "--- tests on the newest OpenTelemetry SDK" >&2
status=0
run_pytest pytest -q "$@" || status=$?
if [ "$status" -eq 0 ] && [ "${#failed[@]}" -gt 0 ]; then
    status=1
fi
if [ "${#failed[@]}" -gt 0 ]; then
    printf 'failed before the main test run: %s\n' "${failed[@]}" >&2
fi
exit "$status"
