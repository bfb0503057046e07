"""docs/reliability.md stays true: each row names a test that exists, in the fixed vocabulary."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reliability.md"
PAPERS_LOST = {"0", "0 (read)", "n/a (no store)", "n/a (store not faulted)"}
TRACEBACKS = {"0", "0 (one-line PapersError)", "n/a (Python API)"}


def table_rows() -> list[list[str]]:
    """The cells of every table row that names a test (the header rows do not)."""
    rows = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("| `tests/"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def collected(files: set[str]) -> set[str]:
    """Node ids pytest collects from `files` (a subprocess: ~4 s for the dozen files)."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         *sorted(files)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {line for line in done.stdout.splitlines() if line.startswith("tests/")}


def test_reliability_table_names_real_tests_in_its_vocabulary():
    rows = table_rows()
    assert len(rows) >= 25
    ids = []
    for cells in rows:
        assert len(cells) == 5, cells  # a stray "|" in a cell would shift the columns
        test, tried, seen, lost, tracebacks = cells
        assert test.startswith("`") and test.endswith("`"), test
        ids.append(test.strip("`"))
        assert tried and seen, test
        assert lost in PAPERS_LOST, (test, lost)
        assert tracebacks in TRACEBACKS, (test, tracebacks)
    assert len(set(ids)) == len(ids), "a test has two rows"

    known = collected({node.split("::")[0] for node in ids})
    for node in ids:
        # An id without [...] stands for all of a parametrized test's cases.
        assert node in known or any(k.startswith(node + "[") for k in known), (
            f"{node} names no test: update docs/reliability.md")
