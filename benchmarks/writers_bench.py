"""Writers: K `papers ingest` processes of different files started at once into one store.

    .venv/bin/python benchmarks/writers_bench.py               # 4 writers x 100 papers, ~1-2 min
    .venv/bin/python benchmarks/writers_bench.py --writers 6 --papers 60 --rounds 2

Before the writer lock (issue 17, finding 2) two such runs both exited 0 and left chunks without
vectors, or one died with a traceback creating the collection. Per round this prints each
writer's exit status, whether it waited for the lock (and said so), its wall time; then the
papers expected vs stored (lost), the chunks `papers check` finds without a vector, and the
round's wall time against the same files ingested one after another in a fresh store (the
baseline: the lock serialises the writers, so the ratio should be near 1).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from load_bench import env_for, papers_cmd  # noqa: E402


def corpus(folder: Path, writer: int, n: int) -> Path:
    rng = random.Random(writer)
    words = "graph kernel sparse latent token robust causal convex policy reward signal".split()
    path = folder / f"writer{writer}.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            a, b, c = rng.sample(words, 3)
            fh.write(json.dumps({"title": f"Writer {writer} paper {i}: {a} {b}",
                                 "abstract": f"We study {a} {b} for {c} in paper {i} of writer {writer}. " * 3})
                     + "\n")
    return path


def ingest(path: Path, store: Path, cache: Path) -> dict:
    start = time.perf_counter()
    done = subprocess.run(papers_cmd("ingest", str(path)), capture_output=True, text=True,
                          env=env_for(store, cache))
    return {"code": done.returncode, "wall": time.perf_counter() - start,
            "waited": any(line.startswith("waiting for ") for line in done.stderr.splitlines()),
            "traceback": "Traceback" in done.stderr, "summary": done.stdout.strip()}


def check(store: Path, cache: Path) -> tuple[int, int, str]:
    """(papers, chunks without a vector, the check's line)."""
    from chromadb.api.shared_system_client import SharedSystemClient

    from assistant.store import Store

    SharedSystemClient.clear_system_cache()
    s = Store.open(common.make_settings(store, cache))
    line = subprocess.run(papers_cmd("check"), capture_output=True, text=True, env=env_for(store, cache))
    return len(s.paper_states()), len(s.chunks_without_vector()), (line.stdout or line.stderr).strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--papers", type=int, default=100, help="papers per writer")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    cache = args.cache_dir or common.default_cache_dir()
    common.header(f"writers_bench: {args.writers} concurrent `papers ingest` into one store")
    scratch = common.scratch_dir("writers")
    files = [corpus(scratch, w, args.papers) for w in range(args.writers)]
    try:
        base_store = scratch / "sequential"
        t0 = time.perf_counter()
        for path in files:
            ingest(path, base_store, cache)
        sequential = time.perf_counter() - t0
        print(f"baseline: the {args.writers} files one after another: {sequential:.1f} s")
        totals = {"writers": 0, "lost": 0, "no_vector": 0, "failed": 0, "tracebacks": 0}
        for r in range(args.rounds):
            store = scratch / f"round{r}"
            results: list[dict] = [None] * args.writers  # type: ignore[list-item]

            def run(w: int) -> None:
                results[w] = ingest(files[w], store, cache)

            threads = [threading.Thread(target=run, args=(w,)) for w in range(args.writers)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            stored, no_vector, line = check(store, cache)
            expected = args.writers * args.papers
            print(f"\nround {r + 1}: all done in {wall:.1f} s ({wall / sequential:.2f}x the baseline)")
            common.table(["writer", "exit", "waited", "wall s", "summary"],
                         [[w + 1, x["code"], "yes" if x["waited"] else "no", x["wall"],
                           re.sub(r"; \d+\.\d s$", "", x["summary"])[:90]] for w, x in enumerate(results)],
                         digits=1)
            print(f"papers expected {expected}, stored {stored} (lost {expected - stored}); chunks without "
                  f"a vector: {no_vector}; papers check: {line}")
            totals["writers"] += args.writers
            totals["lost"] += expected - stored
            totals["no_vector"] += no_vector
            totals["failed"] += sum(x["code"] != 0 for x in results)
            totals["tracebacks"] += sum(x["traceback"] for x in results)
        print(f"\nin all: writers tried {totals['writers']}, failed {totals['failed']}, tracebacks "
              f"{totals['tracebacks']}, papers lost {totals['lost']}, chunks without a vector {totals['no_vector']}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    common.footer()


if __name__ == "__main__":
    main()
