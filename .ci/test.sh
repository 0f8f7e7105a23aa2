#!/usr/bin/env bash
# The test command of README.md: installs everything the tests need into .venv, then runs them.
# The tests start their own servers (the stand-in LM server, MLflow, Prometheus) on 127.0.0.1.
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
python3 -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e '.[dev]'
set +e
python -m pytest -q "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: failing on purpose" >&2
    exit 1
fi
exit "$status"
