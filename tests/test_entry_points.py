"""The three ways the suite is used work as a newcomer types them: `pytest`, `pytest
--benchmark-only` (the venv's entry point, not `python -m pytest`) and `python -m bench.run`."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTEST = Path(sys.executable).with_name("pytest")


def test_pytest_benchmark_only_collects_through_the_entry_point():
    p = subprocess.run([str(PYTEST), "--benchmark-only", "--collect-only", "-q", "-p", "no:cacheprovider"], cwd=REPO,
                       capture_output=True, text=True, timeout=300, env={**os.environ})
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    listed = [line for line in p.stdout.splitlines() if "::" in line]
    assert listed and all(line.startswith("tests/benchmarks/") for line in listed), "benchmark cases only, none listed as skipped"
    assert "deselected" in p.stdout and "error" not in p.stdout.lower()


def test_plain_pytest_entry_point_imports_the_test_helpers(tmp_path):
    p = subprocess.run([str(PYTEST), "tests/test_measure.py", "-q", "-p", "no:cacheprovider"], cwd=REPO,
                       capture_output=True, text=True, timeout=300, env={**os.environ})
    assert p.returncode == 0 and " passed" in p.stdout, p.stdout[-2000:]
