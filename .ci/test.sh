#!/usr/bin/env bash
# The test command of README.md: installs everything the tests need into .venv, type-checks and lints the
# package, runs the fast tests once more on the oldest version of every dependency lmscope declares, the DSPy tests
# on every older DSPy minor lmscope supports, then the whole suite on the newest versions, and prints the DSPy
# support matrix. The tests start their own servers (the stand-in LM server, MLflow, Phoenix, Prometheus) on
# 127.0.0.1; Phoenix runs from a venv of its own (.venv/phoenix, made below).
# Every step runs even when an earlier one failed, so one CI run reports everything; the suite runs last and
# its exit code is the script's, unless it passed and another step failed (then 1).
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
# Installed at their newest in every venv but the floor one, also when the venv is reused from an earlier run (a fresh
# clone gets the newest anyway): the SDK, and LiteLLM, through which every DSPy release talks to providers.
newest=(opentelemetry-api opentelemetry-sdk opentelemetry-exporter-otlp litellm)

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

# --- older DSPy releases ------------------------------------------------------------------------------------------
# The newest patch of every DSPy minor before the newest one (whose DSPy the suite below runs on), each in a venv of
# its own installed as .venv is (the dev extra: its DSPy tests need OpenInference, Logfire, MLflow, the distro and
# Optuna; no requirement of it conflicts with DSPy 3.0-3.3, and each venv gets the same newest SDK and LiteLLM as
# .venv), running the DSPy tests: every tests/instrumentation/test_dspy_*.py and the public API's end-to-end tests.
# DSPy before 3.4 has one engine, LiteLLM: there the tests run on it alone (tests/dspy_release.py). Every run writes
# its junit report to .venv/matrix/, which .ci/dspy_matrix.py turns into the support matrix at the end, and
# tests/test_dspy_releases.py, in the suite below, runs one app in each of these venvs (TEST_DSPY_VENVS) and compares
# its trace with the newest release's. On a 2-core machine a release takes about 6 min: 2-3 to build its venv (15 s
# when reused), 3-4.5 for its tests.
old_dspy_releases=("3.0.*" "3.1.*" "3.2.*" "3.3.*")
dspy_tests=(tests/instrumentation/test_dspy_*.py tests/test_public_api.py)
matrix_dir=.venv/matrix
rm -rf "$matrix_dir"
mkdir -p "$matrix_dir"
dspy_venvs=()
for release in "${old_dspy_releases[@]}"; do
    started=$SECONDS
    venv=.venv/dspy-${release%.\*}
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    if ! "$venv/bin/python" -m pip install --quiet -e '.[dev]' --upgrade "dspy==$release" "${newest[@]}"; then
        failed+=("installing dspy==$release")
        continue
    fi
    version=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("dspy"))')
    echo "--- the DSPy tests on DSPy $version ($venv, built in $((SECONDS - started)) s)" >&2
    run_pytest "$venv/bin/pytest" -q --junitxml "$matrix_dir/dspy-$version.xml" "${dspy_tests[@]}" "$@" \
        || failed+=("the DSPy tests on DSPy $version")
    dspy_venvs+=("$PWD/$venv")
done
TEST_DSPY_VENVS=$(IFS=:; echo "${dspy_venvs[*]}")
export TEST_DSPY_VENVS

# --- the newest SDK ----------------------------------------------------------------------------------------
python3 -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e '.[dev]' --upgrade "${newest[@]}" dspy  # and the newest DSPy the extra allows
python -m pip list 2>/dev/null | grep -E '^(opentelemetry-(api|sdk)|litellm|dspy) ' >&2
echo "--- mypy --strict (pyproject.toml [tool.mypy])" >&2
mypy || failed+=("mypy")
echo "--- ruff check" >&2
ruff check || failed+=("ruff check")

echo "--- tests on the newest OpenTelemetry SDK" >&2
status=0
newest_dspy=$(python -c 'import importlib.metadata as m; print(m.version("dspy"))')
run_pytest pytest -q --junitxml "$matrix_dir/dspy-$newest_dspy.xml" "$@" || status=$?
echo "--- the DSPy support matrix (.ci/dspy_matrix.py; README.md, Supported DSPy releases)" >&2
python .ci/dspy_matrix.py "$matrix_dir" "${dspy_tests[@]}" || failed+=("the DSPy support matrix (a release failed)")
if [ "$status" -eq 0 ] && [ "${#failed[@]}" -gt 0 ]; then
    status=1
fi
if [ "${#failed[@]}" -gt 0 ]; then
    printf 'failed besides the main test run: %s\n' "${failed[@]}" >&2
fi
exit "$status"
