"""The BM25 index build: the page builder (bm25_build.py) against the builder it replaced.

    .venv/bin/python benchmarks/bm25_build_bench.py --terms /work/scale/syn-1000000/bm25 --runs 2
    .venv/bin/python benchmarks/bm25_build_bench.py --synthetic 100000      # builds the terms first

Both sides start from the same term ids: a saved index's terms.npy / lengths.npy / vocab.json
(`--terms`; cold_search.py --synthetic N leaves one beside each store), or search_bench's
synthetic texts tokenized once (`--synthetic N`). Each build runs in its own process, fed PAGE
chunks at a time, and prints its seconds, its peak RSS (ru_maxrss) and a digest of the arrays,
which must be equal on both sides:

  before   the builder of commit 2567541: the pages' term ids held in memory, bm25s's
           `build_index_from_ids` (a Counter a document in Python, the whole collection's
           triples, then a column sort with half bm25s's transient memory)
  after    `bm25.Builder(spill=...)`: term ids spilled to a file, `bm25_build.index_arrays`

The runs alternate (before, after, after, before, ...); medians are printed.

    .venv/bin/python benchmarks/bm25_build_bench.py --store /work/scale/syn-1000000 --before /tmp/old

`--store DIR --before CHECKOUT`: ingest's whole index step instead, `BM25Index._write` (what
`BM25Index.refresh` runs when the store changed: the store read a page at a time, chunks.jsonl,
the chunk table, the names table, the term ids and the index), over an embedded store, into a
temporary folder beside it, with the code of CHECKOUT and of this checkout. The store is only
read.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

# BENCH_CODE (set by --store for its children): the checkout whose `assistant` is measured.
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, os.environ.get("BENCH_CODE") or str(Path(__file__).resolve().parent.parent))

import common  # noqa: E402


# --- the builder before (commit 2567541's bm25.Builder.finish, unchanged but for its name) ------
class _Docs:
    def __init__(self, pages):
        self._pages = pages

    def __len__(self):
        return sum(len(lengths) for _, lengths in self._pages)

    def __iter__(self) -> Iterator[list[int]]:
        for flat, lengths in self._pages:
            start = 0
            for n in lengths.tolist():
                yield flat[start : start + n].tolist()
                start += n


def _csc(data, rows, cols, shape):
    indptr = np.zeros(shape[1] + 1, dtype=np.int64)
    np.cumsum(np.bincount(cols, minlength=shape[1]), out=indptr[1:])
    order = np.argsort(cols, kind="stable")
    return data[order], rows[order], indptr


def build_before(pages, vocab: dict[str, int]):
    import bm25s

    retriever = bm25s.BM25()
    retriever._np_csc = _csc
    retriever.scores = retriever.build_index_from_ids(
        unique_token_ids=list(vocab.values()), corpus_token_ids=_Docs(pages), show_progress=False)
    return retriever.scores


def build_after(pages, vocab: dict[str, int], spill: Path):
    from assistant.bm25 import Builder

    builder = Builder.spilling(vocab, spill)
    try:
        for flat, lengths in pages:
            builder.add_ids(flat, lengths)
        retriever, _ = builder.finish()
    finally:
        builder.close()
    return retriever.scores


# --- the timed child ---------------------------------------------------------------------------
def saved_pages(folder: Path, page: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The saved term ids, `page` chunks at a time, read from the file (no memory map: a store
    page arrives as fresh memory, and a mapped file's pages would count in the peak RSS)."""
    lengths = np.load(folder / "lengths.npy")
    with open(folder / "terms.npy", "rb") as fh:
        major, _ = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        read_header(fh)  # leaves fh at the first term id
        for a in range(0, len(lengths), page):
            part = lengths[a : a + page].copy()
            yield np.fromfile(fh, dtype=np.int32, count=int(part.sum())), part


def child(side: str, folder: Path, work: Path) -> None:
    from assistant.bm25 import PAGE

    vocab = json.loads((folder / "vocab.json").read_text())
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    if side == "before":
        pages = list(saved_pages(folder, PAGE))  # what the old builder held: every page's term ids
        scores = build_before(pages, vocab)
    else:
        scores = build_after(saved_pages(folder, PAGE), vocab, work / "terms.spill")
    seconds = time.perf_counter() - t0
    digest = hashlib.blake2b(digest_size=8)
    for key in ("data", "indices", "indptr"):
        digest.update(np.ascontiguousarray(scores[key]))  # the buffer, not a copy
    print(json.dumps({"seconds": seconds, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "rss_start_mb": rss0, "entries": int(len(scores["data"])), "digest": digest.hexdigest()}))


def child_store(store_dir: Path, work: Path) -> None:
    """Ingest's index step over the store at `store_dir`, into `work` (with the code on sys.path)."""
    t0 = time.perf_counter()
    from assistant.retrieval import BM25Index
    from assistant.store import Store

    store = Store.open(common.make_settings(store_dir))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    phase = _phases()
    BM25Index._write(store, work / "bm25")
    phase("saved")
    index = BM25Index.load(work / "bm25", store.generation)
    scores = index._retriever.scores
    digest = hashlib.blake2b(digest_size=8)
    digest.update(np.ascontiguousarray(scores["data"]))  # vocabulary ids may differ
    print(json.dumps({"seconds": time.perf_counter() - t0, "rss_mb": resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_start_mb": rss0, "entries": int(len(scores["data"])),
        "digest": digest.hexdigest(), "code": str(Path(sys.modules["assistant"].__file__).parent.parent)}))


def _phases():
    """Log the resident set (VmRSS) to stderr every 5 s and at each phase of the build: reading
    the store, the index arrays (`Builder.finish`), the saves. Returns the marker function."""
    import threading

    from assistant import bm25
    from assistant.chunk_table import TableWriter

    from server_client import rss_mb

    state = {"phase": "reading the store", "peak": {}}

    def rss() -> float:
        return rss_mb(os.getpid())

    def mark(name: str) -> None:
        now = rss()
        state["peak"][state["phase"]] = max(state["peak"].get(state["phase"], 0), now)
        print(f"  [{time.strftime('%H:%M:%S')}] end of {state['phase']}: {now:.0f} MB "
              f"(peak in it {state['peak'][state['phase']]:.0f})", file=sys.stderr, flush=True)
        state["phase"] = name

    def sample() -> None:
        while True:
            time.sleep(5)
            ph = state["phase"]
            state["peak"][ph] = max(state["peak"].get(ph, 0), rss())

    threading.Thread(target=sample, daemon=True).start()

    def wrap(cls, name: str, label: str) -> None:
        inner = getattr(cls, name)

        def wrapped(*a, **k):
            mark(label)
            return inner(*a, **k)

        setattr(cls, name, wrapped)

    wrap(bm25.Builder, "finish", "the index arrays")
    wrap(TableWriter, "save", "saving the chunk table")
    wrap(bm25.Builder, "save_terms", "saving the term ids")
    wrap(bm25, "write_parts", "saving the arrays")
    return mark


def run_child(side: str, folder: Path, work: Path, code: Path | None = None) -> dict:
    if code is not None:  # --store: the side's code first on sys.path, run from its folder
        env = {**os.environ, "BENCH_CODE": str(code)}
        proc = subprocess.run([sys.executable, __file__, "--child-store", str(folder), str(work)],
                              capture_output=True, text=True, env=env, cwd=code)
        print(proc.stderr.strip()[-2000:], flush=True)
        shutil.rmtree(work / "bm25", ignore_errors=True)
    else:
        proc = subprocess.run([sys.executable, __file__, "--child", side, str(folder), str(work)],
                              capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{side} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _store_count(folder: Path) -> int:
    """The store's chunk count, asked in a child: Chroma loads the whole HNSW index for a count
    (2 GB at 1M chunks), and a parent's peak RSS is inherited by its children's ru_maxrss."""
    code = ("import sys; sys.path[:0] = sys.argv[1:3]; import common; from assistant.store import Store; "
            "print(Store.open(common.make_settings(sys.argv[3])).count())")
    here = Path(__file__).resolve().parent
    out = subprocess.run([sys.executable, "-c", code, str(here), str(here.parent), str(folder)],
                         capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


def synthetic_terms(n: int, root: Path) -> Path:
    """search_bench's first n synthetic chunks, tokenized into a saved-terms folder (kept under root)."""
    import search_bench

    from assistant.bm25 import PAGE, Builder

    folder = root / f"terms-{n}"
    if (folder / "vocab.json").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    chunks, _ = search_bench.synthetic_records(n, 0, common.default_cache_dir())
    builder = Builder()
    for i in range(0, n, PAGE):
        builder.add([c.embed_text for c in chunks[i : i + PAGE]])
    builder.save_terms(folder)
    return folder


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--terms", type=Path, help="a saved BM25 index folder (terms.npy, lengths.npy, vocab.json)")
    ap.add_argument("--synthetic", type=int, help="tokenize this many synthetic chunks instead")
    ap.add_argument("--root", type=Path, default=Path("/tmp/pab-bm25-build"))
    ap.add_argument("--runs", type=int, default=2, help="builds of each side (alternating)")
    ap.add_argument("--store", type=Path, help="an embedded store: time ingest's whole index step")
    ap.add_argument("--before", type=Path, help="with --store: a checkout of the code before")
    ap.add_argument("--sides", nargs="+", default=["before", "after"], choices=["before", "after"])
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--child-store", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return 0
    if args.child_store:
        child_store(Path(args.child_store[0]), Path(args.child_store[1]))
        return 0
    if args.store and not args.before:
        ap.error("--store needs --before CHECKOUT (the code to compare with)")
    codes = {"before": args.before, "after": Path(__file__).resolve().parent.parent} if args.store else {}
    folder = args.store or args.terms or synthetic_terms(args.synthetic or 100_000, args.root)
    n_chunks = _store_count(folder) if args.store else len(np.load(folder / "lengths.npy", mmap_mode="r"))
    what = "ingest's index step (BM25Index._write)" if args.store else "BM25 index build"
    common.header(f"{what} over {n_chunks:,} chunks ({folder})")
    results: dict[str, list[dict]] = {"before": [], "after": []}
    order = [("before", "after"), ("after", "before")]
    scratch = folder.parent if args.store else None  # beside the store: the same disk
    with tempfile.TemporaryDirectory(dir=scratch) as work:
        for run in range(args.runs):
            for side in [x for x in order[run % 2] if x in args.sides]:
                r = run_child(side, folder, Path(work), codes.get(side))
                results[side].append(r)
                print(f"  run {run + 1} {side:6s} {r['seconds']:8.1f} s  {r['rss_mb']:7.0f} MB peak "
                      f"(start {r['rss_start_mb']:.0f})  {r['entries']:,} entries  {r['digest']}"
                      + (f"  code {r['code']}" if "code" in r else ""), flush=True)
    digests = {r["digest"] for rs in results.values() for r in rs}
    med = {s: (statistics.median(r["seconds"] for r in rs), statistics.median(r["rss_mb"] for r in rs))
           for s, rs in results.items() if rs}
    print(f"\n| {n_chunks:,} chunks | seconds, median | peak RSS, median |\n|---|---|---|")
    for side, (sec, rss) in med.items():
        print(f"| {side} | {sec:.1f} | {rss:,.0f} MB |")
    if len(med) == 2:
        print(f"after/before: time {med['after'][0] / med['before'][0]:.2f}x, "
              f"peak RSS {med['after'][1] / med['before'][1]:.2f}x; arrays equal: {len(digests) == 1}")
    return 0 if len(digests) == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
