"""Peak RSS of a re-ingest and of `papers check` on a large store, two code trees in one run.

    nice -n 10 .venv/bin/python benchmarks/paper_state_bench.py --build 100000 --root /tmp/psb
    nice -n 10 .venv/bin/python benchmarks/paper_state_bench.py --root /tmp/psb \
        --trees before=/work/main after=.

`--build N` writes a synthetic arXiv snapshot of N records (arxiv_scale_bench.record; the
snapshot reader keeps no DOI, so no stored paper has an alias) and ingests it with
the cheap deterministic embedding (NOT the model) into ROOT/store. Then, for each tree (its
code put first on PYTHONPATH), each in a fresh process, alternating the trees `--rounds` times:
  reingest  `ingest` of the same snapshot (every paper unchanged: nothing written)
  newbatch  `ingest` of the snapshot plus 500 new records (written into a copy of the store)
  check     `integrity.check`
printing wall seconds and peak RSS (ru_maxrss) of each process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def snapshot(path: Path, start: int, n: int) -> None:
    from arxiv_scale_bench import record

    with open(path, "w", encoding="utf-8") as fh:
        for i in range(start, start + n):
            rec = record(i)
            fh.write(json.dumps(rec) + "\n")


def settings_for(store: Path):
    from assistant.config import Settings

    return Settings(store_dir=store, cache_dir=Path(os.environ["PAPERS_CACHE_DIR"]))


def child(task: str, root: Path) -> None:
    from arxiv_scale_bench import cheap_embed

    t0 = time.perf_counter()
    if task == "check":
        from assistant.integrity import check

        report = check(settings_for(root / "store"))
        out = {"papers": report.papers, "chunks": report.chunks, "ok": report.ok}
    else:
        from assistant.ingest import ingest

        store, files = root / "store", [root / "snapshot.json"]
        if task == "newbatch":
            store = root / "store-copy"
            files.append(root / "new.json")
        report = ingest(settings_for(store), files, embed=cheap_embed)
        out = {"added": report.added, "unchanged": report.unchanged, "papers": report.papers}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(out))


def run(tree: Path, task: str, root: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(HERE)])}
    if task == "newbatch":
        shutil.rmtree(root / "store-copy", ignore_errors=True)
        shutil.copytree(root / "store", root / "store-copy")
    done = subprocess.run([sys.executable, __file__, "--child", task, "--root", str(root)],
                          env=env, stdout=subprocess.PIPE, text=True, cwd=tree, check=False)
    if done.returncode:
        return {"failed": done.returncode}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--build", type=int)
    parser.add_argument("--trees", nargs="+", default=["before=/work/main", f"after={HERE.parent}"])
    parser.add_argument("--tasks", nargs="+", default=["reingest", "newbatch", "check"])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("PAPERS_CACHE_DIR", str(args.root / "cache"))
    if args.child:
        child(args.child, args.root)
        return
    print("NOTE: the embedding is a deterministic cheap hash function (benchmark only), not MiniLM.")
    if args.build:
        args.root.mkdir(parents=True, exist_ok=True)
        snapshot(args.root / "snapshot.json", 0, args.build)
        snapshot(args.root / "new.json", args.build, 500)
        sys.path.insert(0, args.trees[0].split("=", 1)[1])  # built by the first tree
        from arxiv_scale_bench import cheap_embed

        from assistant.ingest import ingest

        t0 = time.perf_counter()
        report = ingest(settings_for(args.root / "store"), [args.root / "snapshot.json"], embed=cheap_embed)
        print(f"built: {report.papers} papers, {report.chunks} chunks in {time.perf_counter() - t0:.0f} s")
    print(f"load before: {os.getloadavg()}")
    for _ in range(args.rounds):
        for task in args.tasks:
            for name, tree in (t.split("=", 1) for t in args.trees):
                print(f"{task:9} {name:7} {json.dumps(run(Path(tree).resolve(), task, args.root))}",
                      flush=True)
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
