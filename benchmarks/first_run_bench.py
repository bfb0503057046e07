"""The first run's ingest of the bundled collection: shipped vectors vs embedding for real.

    .venv/bin/python benchmarks/first_run_bench.py             # ~2-4 min on 2 busy cores
    .venv/bin/python benchmarks/first_run_bench.py --repeat 2  # alternate the order, take medians

Each side is a new `papers ingest` process with a fresh store AND a fresh cache dir (nothing
staged: tiktoken, and MiniLM where it is used, are copied and sha256-checked inside the timing),
as on a new machine after `pip install`:
  shipped   `papers ingest`            looks the 704 chunk vectors up in assistant/data/vectors/
  real      `papers ingest --rebuild`  embeds them with the model (the baseline)
Figures: process wall time (what the user waits; imports included), the ingest's own seconds
(its summary line), whether the model was staged, ratio real/shipped.     goal: shipped <= 10 s
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402


def first_ingest(rebuild: bool) -> dict:
    folder = common.scratch_dir("first-run")
    papers = Path(sys.executable).with_name("papers")
    cmd = [str(papers)] if papers.exists() else [sys.executable, "-m", "assistant"]
    env = {**os.environ, "PAPERS_STORE_DIR": str(folder / "store"), "PAPERS_CACHE_DIR": str(folder / "cache")}
    env.pop("PAPERS_CHROMA_URL", None)
    before = common.load()[0]
    with common.timed() as t:
        done = subprocess.run(cmd + ["ingest"] + (["--rebuild"] if rebuild else []), env=env, check=True,
                              capture_output=True, text=True)
    summary = done.stdout.strip().splitlines()[-1]
    ingest_s = float(re.search(r"; ([\d.]+) s$", summary).group(1))
    chunks = int(re.search(r"store: \d+ papers, (\d+) chunks", summary).group(1))
    staged = (folder / "cache" / "onnx_models").exists()
    shutil.rmtree(folder, ignore_errors=True)
    return {"wall": t.seconds, "ingest": ingest_s, "chunks": chunks, "model_staged": staged, "load": before}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=1, help="pairs to run, alternating the order (default 1)")
    args = ap.parse_args(argv)

    common.header("first-run ingest of the bundled collection: shipped vectors vs the model")
    runs: dict[str, list[dict]] = {"shipped": [], "real": []}
    for r in range(max(1, args.repeat)):
        order = ("shipped", "real") if r % 2 == 0 else ("real", "shipped")
        for side in order:
            got = first_ingest(rebuild=side == "real")
            runs[side].append(got)
            print(f"  run {r + 1}: {side:7s} process {got['wall']:.1f} s, ingest {got['ingest']:.1f} s, "
                  f"{got['chunks']} chunks, model staged: {got['model_staged']}, load {got['load']:.2f}",
                  flush=True)
    med = {side: (common.median([g["wall"] for g in rs]), common.median([g["ingest"] for g in rs]))
           for side, rs in runs.items()}
    print()
    common.table(["first `papers ingest`", "process s", "ingest s", "x shipped (process)", "x shipped (ingest)"],
                 [(side, w, i, w / med["shipped"][0], i / med["shipped"][1]) for side, (w, i) in med.items()],
                 digits=2)
    print(f"\nshipped first run: {med['shipped'][0]:.1f} s as a process (goal <= 10 s: "
          f"{common.goal(med['shipped'][0] <= 10)}); real/shipped = {med['real'][0] / med['shipped'][0]:.1f}x "
          f"(process), {med['real'][1] / med['shipped'][1]:.1f}x (ingest alone)")
    common.footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
