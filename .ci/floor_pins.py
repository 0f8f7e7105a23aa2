"""Prints `name==version` for the floor of every dependency pyproject.toml declares with `>=` (the runtime ones
and LiteLLM, which the `litellm` and `dev` extras declare): .ci/test.sh installs these into the floor venv, so
every declared floor is a tested one."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

FLOOR = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?>=([^,;\s]+)")

project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]
declared = [*project["dependencies"], *project["optional-dependencies"]["litellm"]]
for requirement in declared:
    if match := FLOOR.match(requirement):
        print(f"{match.group(1)}=={match.group(2)}")
