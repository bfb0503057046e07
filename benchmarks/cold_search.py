"""Cold `papers search "stability gap"`: a whole new process (imports, store, model load).

    .venv/bin/python benchmarks/cold_search.py            # 5 runs of each, ~1 min
    .venv/bin/python benchmarks/cold_search.py --runs 9 --query "tabular"

Figures (goal: median < 2 s):
  python -c pass          the interpreter's own start, measured in the same run (baseline)
  import assistant.cli    the CLI module and what it imports at top level (typer, rich, pydantic)
  papers search QUERY     the whole command, output discarded             median of --runs
Runs alternate (baseline, import, search, ...) after one untimed warm-up run, so load drift hits
all three alike. Then, in a child process, the same work step by step (phases), and a
`python -X importtime` run of the command: time by top-level package (sum of self time) and the
heaviest imports made directly by assistant modules (cumulative). -X importtime itself adds
overhead; read its numbers as shares.

The store is the shared benchmark store of the bundled corpus (built once by ingest) unless
--store is given; PAPERS_STORE_DIR / PAPERS_CACHE_DIR point the command at it.

    .venv/bin/python benchmarks/cold_search.py --synthetic 100000 --root /tmp/pab-rss

--synthetic N: a new `papers search` process on a synthetic store of N chunks (search_bench's
texts, random 384-d vectors; built once under --root and reused): its peak RSS (the child's
ru_maxrss) and wall seconds to its first result, median of --runs after one untimed run (which
also builds the BM25 folder if the saved one is not current); then, in a fresh process, the BM25
side alone: BM25Index.load's seconds and added RSS, BM25Index.search's ms with and without filters. Run it with PYTHONPATH pointing at
another checkout to compare versions on the same store.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402


def papers_cmd() -> list[str]:
    script = Path(sys.executable).with_name("papers")
    return [str(script)] if script.exists() else [sys.executable, "-m", "assistant"]


def run(cmd: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return time.perf_counter() - t0, proc


# --- the phases child ------------------------------------------------------------------------
def child_phases(query: str) -> None:
    """Runs in a fresh process: the work of `papers search` step by step, printed as JSON."""
    t0 = time.perf_counter()
    phases = []

    def mark(name: str) -> None:
        nonlocal t0
        now = time.perf_counter()
        phases.append((name, now - t0))
        t0 = now

    import assistant.cli  # noqa: F401  (typer, rich, pydantic-settings)
    mark("import assistant.cli (typer, rich, pydantic)")
    from assistant.answer import Assistant
    from assistant.config import Settings

    settings = Settings()
    mark("import assistant.answer + Settings()")
    a = Assistant(settings)
    import chromadb  # noqa: F401
    mark("import chromadb")
    store = a.store
    mark("Store.open (client, collection) + count")
    from assistant.embeddings import make_embedding_function
    from assistant.retrieval import BM25Index, Retriever

    mark("import embeddings + retrieval (numpy...)")
    embed = make_embedding_function(settings)
    mark("make_embedding_function (assets check, class)")
    import bm25s  # noqa: F401
    import Stemmer  # noqa: F401
    mark("import bm25s + Stemmer")
    bm25 = BM25Index.for_store(store)
    mark("BM25Index.for_store (load)")
    a._retriever = Retriever(settings, store, embed, bm25)
    embed(["warm"])
    mark("first embed (onnxruntime import + session + tokenizer)")
    store.query(embed([query])[0], settings.candidates)
    mark("first chroma query (HNSW load)")
    a.search(query, k=10)
    mark("the search itself (warm)")
    print(json.dumps(phases))


# --- a synthetic store: peak RSS and seconds of a new search process -------------------------
def synthetic_store(n: int, root: Path, cache_dir) -> Path:
    """The store of n synthetic chunks under root, built on first use (~7 min per 100,000)."""
    import numpy as np
    import search_bench

    from assistant.store import Store

    folder = root / f"syn-{n}"
    if (folder / "done").exists():
        return folder
    settings = common.make_settings(folder, cache_dir)
    chunks, metas = search_bench.synthetic_records(n, 0, settings.cache_dir)
    rng = np.random.default_rng(1)
    store = Store.open(settings, create=True)
    for i in range(0, n, 5000):
        vectors = rng.standard_normal((len(chunks[i:i + 5000]), 384), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        store.upsert(chunks[i:i + 5000], vectors, metas[i:i + 5000])
        print(f"  upserted {min(i + 5000, n):,}/{n:,}", file=sys.stderr, flush=True)
    store.bump_generation()
    (folder / "done").write_text("")
    return folder


def timed_rss(cmd: list[str], env: dict, cwd: Path) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MB, return code) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - t0, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def child_bm25(folder: Path) -> None:
    """Runs in a fresh process: BM25Index.load's seconds and added peak RSS, then the mean ms
    of BM25Index.search (100 chunks) unfiltered, with a year and with a category filter."""
    import resource

    import bm25s  # noqa: F401  (imports are not part of the load)
    import Stemmer  # noqa: F401

    from assistant.retrieval import BM25Index
    from assistant.store import Store
    from assistant.types import Filters

    store = Store.open(common.make_settings(folder))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    index = BM25Index.load(store.local_dir() / "bm25", store.generation)
    load = time.perf_counter() - t0
    added = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss
    out = []
    for name, f in (("none", None), ("year>=2020", Filters(year_min=2020)), ("category", Filters(category="cs.LG"))):
        index.search("stability gap", 100, f)
        t0 = time.perf_counter()
        for _ in range(5):
            index.search("stability gap continual pre-training", 100, f)
        out.append(f"{name} {(time.perf_counter() - t0) / 5 * 1000:.0f} ms")
    print(f"BM25Index.load {load:.2f} s, peak RSS +{added:.0f} MB; search: {', '.join(out)}")


def synthetic_rss(args) -> None:
    import assistant

    cache_dir = args.cache_dir or common.default_cache_dir()
    for n in args.synthetic:
        folder = args.root / f"syn-{n}"
        if not (folder / "done").exists():
            # Built in a child: a parent holding the n records (4 GB at 1,000,000) is what the
            # search children's ru_maxrss reported (5.2 GB, against /usr/bin/time's 2.4 GB).
            subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child-build", str(n),
                            "--root", str(args.root), "--cache-dir", str(cache_dir)], check=True)
        env = {**os.environ, "PAPERS_STORE_DIR": str(folder), "PAPERS_CACHE_DIR": str(cache_dir)}
        for var in ("PAPERS_CHROMA_URL", "PAPERS_CHROMA_TOKEN"):
            env.pop(var, None)
        # Run from the store's folder: `-m` puts the working directory first on sys.path, so
        # from a checkout it would import that checkout's code whatever PYTHONPATH says.
        cmd = [sys.executable, "-m", "assistant", "search", args.query]
        wall, rss, rc = timed_rss(cmd, env, folder)  # untimed: page cache, the BM25 folder if stale
        print(f"{n:,} chunks, code {Path(assistant.__file__).parent.parent}: first run {wall:.1f} s, "
              f"{rss:.0f} MB, exit {rc}")
        runs = [timed_rss(cmd, env, folder) for _ in range(args.runs)]
        common.table(["chunks", "median s", "min s", "max s", "peak RSS MB (median)"],
                     [(f"{n:,}", common.median([r[0] for r in runs]), min(r[0] for r in runs),
                       max(r[0] for r in runs), common.median([r[1] for r in runs]))], digits=2)
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child-bm25", str(folder)],
                              env=env, cwd=folder, capture_output=True, text=True)
        print(proc.stdout.strip() or proc.stderr.strip()[-500:])


# --- importtime ------------------------------------------------------------------------------
LINE = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


def parse_importtime(stderr: str):
    """[(name, self_us, cumulative_us, depth, parent)] from `-X importtime` output."""
    entries = []
    for line in stderr.splitlines():
        m = LINE.match(line)
        if m:
            self_us, cum_us, indent, name = int(m[1]), int(m[2]), m[3], m[4]
            entries.append([name, self_us, cum_us, (len(indent) - 1) // 2, None])
    # Children are printed before their parent: an entry at depth d adopts the pending d+1 ones.
    pending: dict[int, list] = defaultdict(list)
    for e in entries:
        for child in pending.pop(e[3] + 1, []):
            child[4] = e[0]
        pending[e[3]].append(e)
    return entries


def importtime_report(env: dict, query: str, top: int) -> None:
    target = papers_cmd()
    target = target[1:] if target[0] == sys.executable else target  # ["-m", "assistant"] or [script]
    cmd = [sys.executable, "-X", "importtime", *target, "search", query]
    wall, proc = run(cmd, env)
    entries = parse_importtime(proc.stderr)
    total_us = sum(e[1] for e in entries)
    by_root: dict[str, int] = defaultdict(int)
    for name, self_us, *_ in entries:
        by_root[name.split(".")[0]] += self_us
    print(f"\n-X importtime: {len(entries)} modules, {total_us / 1e6:.2f} s of imports in a "
          f"{wall:.2f} s run (importtime's own overhead included)")
    rows = [(root, us / 1e3, 100 * us / total_us) for root, us in
            sorted(by_root.items(), key=lambda kv: -kv[1])[:top]]
    common.table(["top-level package (sum of self)", "ms", "% of imports"], rows, digits=1)
    direct = [e for e in entries if e[4] is None or e[4].startswith("assistant")]
    direct = [e for e in direct if not e[0].startswith("assistant")]
    rows = [(e[0], e[4] or "(run time, from a function)", e[2] / 1e3)
            for e in sorted(direct, key=lambda e: -e[2])[:top]]
    print()
    common.table(["imported (cumulative)", "by", "ms"], rows, digits=1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="timed runs of each command (default 5)")
    ap.add_argument("--query", default="stability gap")
    ap.add_argument("--top", type=int, default=12, help="rows of the importtime tables")
    ap.add_argument("--store", type=Path, default=None, help="an existing store of the bundled corpus")
    ap.add_argument("--cache-dir", type=Path, default=None, help="PAPERS_CACHE_DIR (default: benchmark cache)")
    ap.add_argument("--child-phases", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--synthetic", type=int, nargs="+", default=None,
                    help="peak RSS and seconds on synthetic stores of these many chunks")
    ap.add_argument("--child-bm25", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--child-build", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--root", type=Path, default=Path("/tmp/pab-rss"), help="where --synthetic keeps its stores")
    args = ap.parse_args(argv)
    if args.child_build:
        synthetic_store(args.child_build, args.root, args.cache_dir or common.default_cache_dir())
        return 0
    if args.child_bm25:
        child_bm25(args.child_bm25)
        return 0
    if args.synthetic:
        common.header("a new `papers search` process on synthetic stores: peak RSS, seconds")
        synthetic_rss(args)
        common.footer()
        return 0
    if args.child_phases:
        child_phases(args.query)
        return 0

    common.header(f'cold `papers search "{args.query}"`')
    settings = common.bundled_store(args.cache_dir, args.store)
    env = {**os.environ, "PAPERS_STORE_DIR": str(settings.store_dir),
           "PAPERS_CACHE_DIR": str(settings.cache_dir)}
    for var in ("PAPERS_CHROMA_URL", "PAPERS_CHROMA_TOKEN", "PYTHONPROFILEIMPORTTIME"):
        env.pop(var, None)

    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import assistant.cli'": [sys.executable, "-c", "import assistant.cli"],
        f'papers search "{args.query}"': papers_cmd() + ["search", args.query],
    }
    times: dict[str, list[float]] = {k: [] for k in commands}
    for name, cmd in commands.items():  # untimed warm-up: page cache, .pyc files
        _, proc = run(cmd, env)
        if proc.returncode != 0:
            print(f"`{name}` failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
            return 0
    for _ in range(args.runs):
        for name, cmd in commands.items():
            wall, _ = run(cmd, env)
            times[name].append(wall)

    base = common.median(times["python -c pass"])
    rows = []
    for name, vals in times.items():
        med = common.median(vals)
        rows.append((name, med, min(vals), max(vals), med - base, med / base))
    print(f"{args.runs} runs each, alternating; load now {common.load()[0]:.2f}")
    common.table(["command", "median s", "min s", "max s", "- baseline s", "x baseline"], rows, digits=2)
    search_med = common.median(times[f'papers search "{args.query}"'])
    print(f"cold search median {search_med:.2f} s, goal < 2 s: {common.goal(search_med < 2.0)}")

    # phases, in fresh processes (median of 3)
    per_phase: dict[str, list[float]] = defaultdict(list)
    order: list[str] = []
    for _ in range(3):
        wall, proc = run([sys.executable, __file__, "--child-phases", "--query", args.query], env)
        if proc.returncode != 0:
            print(f"phases child failed: {proc.stderr.strip()[-500:]}")
            break
        for name, secs in json.loads(proc.stdout.strip().splitlines()[-1]):
            if name not in per_phase:
                order.append(name)
            per_phase[name].append(secs)
    if per_phase:
        print("\nphases of a cold search, in a fresh process (median of 3; interpreter start not included)")
        rows = [(name, common.median(per_phase[name])) for name in order]
        rows.append(("total after interpreter start", sum(r[1] for r in rows)))
        common.table(["phase", "seconds"], rows, digits=3)

    importtime_report(env, args.query, args.top)
    common.footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
