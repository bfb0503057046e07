"""The fuzz suite's figures: examples, records and bytes fuzzed, failures, time (issue 17, item 5).

    .venv/bin/python benchmarks/fuzz_figures.py              # one run of tests/test_fuzz.py, ~40 s
    .venv/bin/python benchmarks/fuzz_figures.py --runs 3     # three runs (new random examples each)

Runs `pytest tests/test_fuzz.py -n 0 --hypothesis-show-statistics` as CI does (random examples,
no database), with PAPERS_FUZZ_TALLY pointing at a file the suite writes its tally to. Prints
per test the examples that passed and failed and the seconds spent generating them, then the
records (good and bad), files and bytes the readers got, texts chunked, queries searched, and
the suite's wall time (goal: >= 2,000 examples within 60 s).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

_TEST = re.compile(r"^tests/test_fuzz\.py::(\w+):")
_PHASE = re.compile(r"during generate phase \(([\d.]+) seconds\)")
_COUNTS = re.compile(r"(\d+) passing, (\d+) failing, and (\d+) invalid")


def one_run() -> tuple[dict, dict, float, str]:
    tally = Path(tempfile.mkdtemp(prefix="pab-fuzz-", dir=common.bench_root())) / "tally.json"
    env = {**os.environ, "PAPERS_FUZZ_TALLY": str(tally)}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "tests/test_fuzz.py", "-n", "0", "-q",
                           "-p", "no:cacheprovider", "--hypothesis-show-statistics"],
                          cwd=common.REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    stats: dict[str, dict] = {}
    test = None
    for line in done.stdout.splitlines():
        if m := _TEST.match(line.strip()):
            test = m.group(1)
            stats[test] = {"passing": 0, "failing": 0, "invalid": 0, "seconds": 0.0}
        elif test and (m := _PHASE.search(line)):
            stats[test]["seconds"] += float(m.group(1))
        elif test and (m := _COUNTS.search(line)) and "passing" in line:
            if stats[test]["passing"] == 0 and stats[test]["failing"] == 0:  # the generate phase's
                stats[test].update(passing=int(m.group(1)), failing=int(m.group(2)), invalid=int(m.group(3)))
    counts = json.loads(tally.read_text()) if tally.exists() else {}
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]
    return stats, counts, wall, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    common.header("fuzz_figures: tests/test_fuzz.py")
    for run in range(args.runs):
        stats, counts, wall, summary = one_run()
        print(f"## run {run + 1}: {summary}")
        common.table(["test", "examples passed", "failed", "invalid", "generating s"],
                     [[name, s["passing"], s["failing"], s["invalid"], s["seconds"]] for name, s in stats.items()],
                     digits=1)
        examples = sum(s["passing"] + s["failing"] for s in stats.values())
        failing = sum(s["failing"] for s in stats.values())
        print(f"examples: {examples} ({failing} failing) in {wall:.1f} s of pytest; records written for "
              f"the readers: {counts.get('records', 0)} in {counts.get('files', 0)} files "
              f"({counts.get('bad', 0)} bad, each to be named), {counts.get('bytes', 0):,} bytes; raw-byte files "
              f"{counts.get('raw_files', 0)} ({counts.get('raw_bytes', 0):,} bytes); texts chunked "
              f"{counts.get('chunked', 0)}; queries searched {counts.get('queries', 0)}")
        print()
    common.footer()


if __name__ == "__main__":
    main()
