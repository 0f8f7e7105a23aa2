"""Prints the DSPy support matrix .ci/test.sh just tested: a Markdown table of passed, failed and skipped tests per
DSPy release and engine (README.md's "Supported DSPy releases" table is its output).

    python3 .ci/dspy_matrix.py MATRIX_DIR [TEST_PATH ...]

MATRIX_DIR holds one `pytest --junitxml` report per release, named `dspy-<version>.xml`. Only the tests under the
TEST_PATHs (the DSPy tests .ci/test.sh runs on every release) are counted, so the newest release, whose report is the
whole suite's, gets rows comparable to the others'; a report holding more tests also gets a line of its totals.
A test's engine is its `dspy.engine` property (tests/conftest.py records the `engine` parameter); a test without
one ran on whatever engine the release has: "any". A failed row counts errors too.
Exit status 1 when a release failed a test or ran none, else 0.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

REPORT = re.compile(r"^dspy-(?P<version>\d+(?:\.\d+)*)\.xml$")
ANY_ENGINE = "any"


@dataclass
class Tally:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0

    def add(self, testcase: ET.Element) -> None:
        outcomes = {child.tag for child in testcase}
        if outcomes & {"failure", "error"}:
            self.failed += 1
        elif "skipped" in outcomes:
            self.skipped += 1
        else:
            self.passed += 1
        self.seconds += float(testcase.get("time") or 0)

    def cells(self) -> str:
        return f"{self.passed} | {self.failed} | {self.skipped} | {self.seconds:.0f} s"


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def modules_of(test_paths: list[str]) -> tuple[str, ...]:
    """`tests/instrumentation/test_dspy_tree.py` -> `tests.instrumentation.test_dspy_tree`: the junit classname of
    its tests (a folder gives the prefix of its modules')."""
    return tuple(path.removesuffix(".py").rstrip("/").replace("/", ".") for path in test_paths)


def selected(classname: str, modules: tuple[str, ...]) -> bool:
    return not modules or any(classname == module or classname.startswith(module + ".") for module in modules)


def engine_of(testcase: ET.Element) -> str:
    for prop in testcase.iterfind("properties/property"):
        if prop.get("name") == "dspy.engine":
            return prop.get("value") or ANY_ENGINE
    return ANY_ENGINE


def main(matrix_dir: Path, test_paths: list[str]) -> int:
    modules = modules_of(test_paths)
    reports = sorted(((match["version"], path) for path in matrix_dir.glob("dspy-*.xml")
                      if (match := REPORT.match(path.name))), key=lambda found: version_key(found[0]))
    if not reports:
        print(f"no DSPy test report in {matrix_dir} (dspy-<version>.xml)", file=sys.stderr)
        return 1
    print("| DSPy | engine | passed | failed | skipped | time |")
    print("|---|---|---|---|---|---|")
    whole_suites: list[str] = []
    failing: list[str] = []
    for version, path in reports:
        by_engine: dict[str, Tally] = defaultdict(Tally)
        whole = Tally()
        for testcase in ET.parse(path).getroot().iter("testcase"):
            whole.add(testcase)
            if selected(testcase.get("classname") or "", modules):
                by_engine[engine_of(testcase)].add(testcase)
        for engine, tally in sorted(by_engine.items()):
            print(f"| {version} | {engine} | {tally.cells()} |")
        if not by_engine:
            print(f"| {version} | - | no test ran | | | |")
        selected_count = sum(t.passed + t.failed + t.skipped for t in by_engine.values())
        if whole.passed + whole.failed + whole.skipped > selected_count:
            whole_suites.append(f"Whole suite on DSPy {version}: {whole.passed} passed, {whole.failed} failed, "
                                f"{whole.skipped} skipped ({whole.seconds:.0f} s).")
        if not by_engine or any(tally.failed for tally in by_engine.values()) or whole.failed:
            failing.append(version)
    for line in whole_suites:
        print(f"\n{line}")
    print(f"\nFailing: DSPy {', '.join(failing)}." if failing else "\nEvery release passed.")
    return 1 if failing else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1]), sys.argv[2:]))
