"""Warm search latency: the bundled 400-paper store, then a synthetic store of N chunks.

    .venv/bin/python benchmarks/search_bench.py                    # bundled + 100,000 chunks (~6-9 min)
    .venv/bin/python benchmarks/search_bench.py --chunks 20000     # smaller synthetic store
    .venv/bin/python benchmarks/search_bench.py --skip-synthetic   # bundled store only (~1 min)

Bundled: `Retriever.search` over the shared benchmark store of the bundled corpus (built once by
ingest), after a warm-up, for ~50 real questions (evals/questions.jsonl + a few short queries).
Each query is also run step by step to break the time down:
  embed  MiniLM on the query | chroma  Store.query (HNSW top `candidates` + metadata; includes the
  count() it does first) | bm25  BM25Index.search | fusion  Retriever.fuse
Goal: p50 < 50 ms.

Synthetic: N chunks (2 per paper) with random 384-d unit vectors and texts sampled from the
corpus's word frequencies, written straight into a Store with Store.upsert + chunk_metadata,
then the BM25 index built by BM25Index.for_store (reads the chunks back, as ingest does).
Queried with random unit vectors for the dense side and the real questions' words for BM25.
Random vectors are the worst case for HNSW (no cluster structure), so dense latency is an upper
bound. Prints the synthetic store's build time, split into its steps, and the cold BM25 load
(what every new process pays on a store this size).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

EXTRA_QUERIES = ["stability gap", "tabular foundation models", "checkpointing", "dense retrieval pre-training",
                 "low-rank adaptation"]
STEPS = ("embed", "chroma", "bm25", "fusion")


def queries(n: int) -> list[str]:
    qs = [q["question"] for q in common.read_questions()] + EXTRA_QUERIES
    return (qs * (n // len(qs) + 1))[:n]


def measure(retriever, qs: list[str], warmup: int, filters=None) -> dict[str, list[float]]:
    """Per query: the whole Retriever.search, then the same steps one by one."""
    s = retriever.settings
    for q in qs[:warmup]:
        retriever.search(q, filters=filters)
    out: dict[str, list[float]] = {k: [] for k in ("search", *STEPS, "count", "hits", "noshare")}
    for q in qs:
        t0 = time.perf_counter()
        hits = retriever.search(q, filters=filters)
        out["search"].append(time.perf_counter() - t0)
        out["hits"].append(len(hits))
        t0 = time.perf_counter()
        vec = retriever._embed([q])[0]
        t1 = time.perf_counter()
        dense = retriever.store.query(vec, s.candidates, filters, share=retriever.bm25.share(filters),
                                      passes=retriever.bm25.passes(filters))
        t2 = time.perf_counter()
        sparse = retriever.bm25.search(q, s.candidates, filters)
        t3 = time.perf_counter()
        retriever.fuse(dense, sparse, s.k)
        t4 = time.perf_counter()
        retriever.store.count()
        t5 = time.perf_counter()
        for k, v in zip(STEPS + ("count",), (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            out[k].append(v)
        if filters is not None:  # the baseline: the dense query not told the share nor the ids that pass
            t0 = time.perf_counter()
            retriever.store.query(vec, s.candidates, filters)
            out["noshare"].append(time.perf_counter() - t0)
    return out


def report(title: str, times: dict[str, list[float]], goal_ms: float | None = None) -> None:
    rows = []
    labels = {"search": "Retriever.search (total)", "embed": "  embed query", "chroma": "  chroma query",
              "bm25": "  bm25", "fusion": "  fusion", "count": "  (of chroma: count())",
              "noshare": "  (chroma query not told share and ids: 8 x n, 32 x n, `where`)"}
    for key in ("search", *STEPS, "count", "noshare"):
        if not times[key]:
            continue
        vals = times[key]
        rows.append((labels[key], common.ms(common.percentile(vals, 50)), common.ms(common.percentile(vals, 95)),
                     common.ms(sum(vals) / len(vals))))
    hits = sum(times["hits"]) / len(times["hits"])
    print(f"\n{title}  ({len(times['search'])} queries, {hits:.1f} hits each, load {common.load()[0]:.2f})")
    common.table(["step", "p50 ms", "p95 ms", "mean ms"], rows, digits=1)
    if goal_ms is not None:
        p50 = common.ms(common.percentile(times["search"], 50))
        print(f"p50 {p50:.1f} ms, goal < {goal_ms:.0f} ms: {common.goal(p50 < goal_ms)}")


# --- bundled ---------------------------------------------------------------------------------
def bundled(args) -> None:
    from assistant.embeddings import make_embedding_function
    from assistant.retrieval import BM25Index, Retriever
    from assistant.store import Store
    from assistant.types import Filters

    settings = common.bundled_store(args.cache_dir, args.store)
    store = Store.open(settings)
    retriever = Retriever(settings, store, make_embedding_function(settings), BM25Index.for_store(store))
    qs = queries(args.queries)
    print(f"bundled store: {store.count()} chunks at {settings.store_dir}")
    report("bundled store, warm", measure(retriever, qs, args.warmup), goal_ms=50)
    if args.filtered:  # the bundled papers have no year or category: filter on the largest source file
        from collections import Counter

        top = Counter(s for c in retriever.bm25.chunks for s in c.sources).most_common(1)[0][0]
        report(f"bundled store, warm, filter source={top}",
               measure(retriever, qs[:20], 3, Filters(source=top)))


# --- synthetic -------------------------------------------------------------------------------
def corpus_words(cache_dir) -> tuple[list[str], list[float], list[int], list[str]]:
    """Word list with frequencies, real chunk lengths (words) and categories of the corpus."""
    from assistant.assets import ensure_tiktoken

    ensure_tiktoken(cache_dir)  # chunking needs the staged encodings (else: network)
    from assistant.chunking import chunk_paper
    from assistant.corpus import bundled_paths, read_papers

    papers = read_papers(bundled_paths()).papers
    counts: Counter[str] = Counter()
    lengths = []
    for p in papers:
        for c in chunk_paper(p, 220, 40):
            words = re.findall(r"[A-Za-z][A-Za-z0-9-]*", c.text)
            counts.update(w.lower() for w in words)
            lengths.append(len(words))
    cats = sorted({c for p in papers for c in p.categories}) or ["cs.LG"]
    words, freq = zip(*counts.items())
    total = sum(freq)
    return list(words), [f / total for f in freq], lengths, cats


def synthetic_records(n_chunks: int, seed: int, cache_dir):
    """(chunks, metadatas) for n_chunks synthetic chunks, 2 per paper."""
    import numpy as np

    from assistant.store import chunk_metadata
    from assistant.types import Chunk, Paper

    rng = np.random.default_rng(seed)
    words, probs, lengths, cats = corpus_words(cache_dir)
    words_arr = np.array(words, dtype=object)
    lens = rng.choice(np.array(lengths), size=n_chunks)
    flat = words_arr[rng.choice(len(words), size=int(lens.sum()) + 10 * n_chunks, p=probs)]
    chunks, metas, pos = [], [], 0
    for start in range(0, n_chunks, 2):
        title = " ".join(flat[pos:pos + 10]).capitalize()
        pos += 10
        n = min(2, n_chunks - start)
        texts = []
        for j in range(n):
            ln = int(lens[start + j])
            texts.append(" ".join(flat[pos:pos + ln]))
            pos += ln
        pid = f"syn{start // 2:07d}"
        year = int(rng.integers(2015, 2026))
        paper_cats = tuple(sorted(set(rng.choice(cats, size=int(rng.integers(1, 3))).tolist())))
        paper = Paper(paper_id=pid, title=title, abstract=" ".join(texts), authors=("A. Author", "B. Author"),
                      year=year, url=f"https://arxiv.org/abs/{pid}", categories=paper_cats,
                      sources=("synthetic.jsonl",))
        for j, text in enumerate(texts):
            c = Chunk(chunk_id=f"{pid}#{j}", paper_id=pid, title=title, text=text, position=j, n_chunks=n,
                      year=year, categories=paper_cats, sources=paper.sources)
            chunks.append(c)
            metas.append(chunk_metadata(c, paper, "synthetic"))
    return chunks, metas


def synthetic(args) -> None:
    import numpy as np

    from assistant.retrieval import BM25Index, Retriever
    from assistant.store import Store
    from assistant.types import Filters

    n = args.chunks
    folder = common.scratch_dir("synthetic")
    settings = common.make_settings(folder / "store", args.cache_dir)
    print(f"\nsynthetic store: {n:,} chunks at {folder}", flush=True)
    steps = []
    try:
        with common.timed() as t:
            chunks, metas = synthetic_records(n, args.seed, settings.cache_dir)
            rng = np.random.default_rng(args.seed + 1)
            vectors = rng.standard_normal((n, 384), dtype=np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        steps.append(("generate texts + vectors (not part of an ingest)", t.seconds))
        with common.timed() as t:
            store = Store.open(settings, create=True)
        steps.append(("Store.open(create=True)", t.seconds))
        step = args.upsert_batch
        t0 = time.perf_counter()
        with common.timed() as t:
            for i in range(0, n, step):
                store.upsert(chunks[i:i + step], vectors[i:i + step], metas[i:i + step])
                done = min(i + step, n)
                if done % (step * 4) == 0 or done == n:
                    print(f"  upserted {done:,}/{n:,} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
        steps.append((f"Store.upsert, batches of {step:,}", t.seconds))
        upsert_s = t.seconds
        with common.timed() as t:  # the conversion Store.upsert does before handing vectors to Chroma
            for i in range(0, n, step):
                [list(map(float, e)) for e in vectors[i:i + step]]
        steps.append(("  of which vectors -> lists of float (Store.upsert)", t.seconds))
        # BM25Index.for_store, step by step (its load attempt fails: the generation is new)
        folder_bm25 = store.local_dir() / "bm25"
        with common.timed() as t_all:
            store.bump_generation()
            with common.timed() as t:
                stored = list(store.iter_chunks())
            steps.append(("BM25: read chunks back (Store.iter_chunks)", t.seconds))
            with common.timed() as t:
                bm25 = BM25Index.build(stored, store.generation)
            steps.append(("BM25: BM25Index.build", t.seconds))
            with common.timed() as t:
                bm25.save(folder_bm25)
            steps.append(("BM25: save", t.seconds))
        steps.append(("BM25Index.for_store equivalent (sum)", t_all.seconds))
        bm25_build_s = t_all.seconds
        del stored
        with common.timed() as t:
            BM25Index.load(folder_bm25, store.generation)
        steps.append(("BM25Index.load (what each new process pays)", t.seconds))
        import bm25s

        with common.timed() as t:
            bm25s.BM25.load(str(folder_bm25 / "bm25"))
        steps.append(("  of which bm25s.BM25.load", t.seconds))
        with common.timed() as t:
            with open(folder_bm25 / "chunks.jsonl", encoding="utf-8") as fh:
                [json.loads(line) for line in fh]
        steps.append(("  of which parsing chunks.jsonl", t.seconds))
        with common.timed() as t:
            count = store.count()
        steps.append((f"count() -> {count:,}", t.seconds))
        print(f"\nsynthetic store build ({n:,} chunks, load {common.load()[0]:.2f})")
        common.table(["step", "seconds"], steps, digits=2)
        ingest_like = upsert_s + bm25_build_s
        print(f"ingest-equivalent (upsert + BM25 index, no embedding): {ingest_like:.1f} s = "
              f"{n / ingest_like:,.0f} chunks/s")

        def random_embed(texts):
            v = rng.standard_normal((len(texts), 384), dtype=np.float32)
            return list(v / np.linalg.norm(v, axis=1, keepdims=True))

        retriever = Retriever(settings, store, random_embed, bm25)
        qs = queries(args.queries)
        report(f"synthetic store {n:,} chunks, warm (random query vectors, real query words)",
               measure(retriever, qs, args.warmup))
        if args.filtered:
            report(f"synthetic store {n:,} chunks, filter year_min=2020",
                   measure(retriever, qs[:20], 3, Filters(year_min=2020)))
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def existing(args) -> None:
    """Warm search on a synthetic store built earlier (cold_search.py --synthetic N keeps them
    under its --root): the 1M-chunk figures without building the store again (~2 h here)."""
    import resource

    import numpy as np

    from assistant.retrieval import BM25Index, Retriever
    from assistant.store import Store
    from assistant.types import Filters

    settings = common.make_settings(args.existing, args.cache_dir)
    rng = np.random.default_rng(args.seed + 1)

    def random_embed(texts):
        v = rng.standard_normal((len(texts), 384), dtype=np.float32)
        return list(v / np.linalg.norm(v, axis=1, keepdims=True))

    with common.timed() as t:
        store = Store.open(settings)
        bm25 = BM25Index.for_store(store)
    n = store.count()
    print(f"\nsynthetic store {args.existing}: {n:,} chunks; open + BM25 index {t.seconds:.1f} s, "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    retriever = Retriever(settings, store, random_embed, bm25)
    qs = queries(args.queries)
    report(f"synthetic store {n:,} chunks, warm (random query vectors, real query words)",
           measure(retriever, qs, args.warmup))
    report(f"synthetic store {n:,} chunks, filter year_min=2020",
           measure(retriever, qs[:20], 3, Filters(year_min=2020)))
    # A narrow filter (one year of the synthetic store's 11: ~1 in 11 chunks): told the share,
    # Store.query asks 17 x n nearest once, as ids; not told, 8 x n are too few, and 32 x n
    # follow, each with their metadata.
    report(f"synthetic store {n:,} chunks, filter year_min=2025",
           measure(retriever, qs[:10], 2, Filters(year_min=2025)))
    print(f"peak RSS after the searches: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=50, help="queries per measurement (default 50)")
    ap.add_argument("--warmup", type=int, default=5, help="warm-up queries (default 5)")
    ap.add_argument("--chunks", type=int, default=100_000, help="synthetic store size (default 100000)")
    ap.add_argument("--upsert-batch", type=int, default=5000, help="chunks per Store.upsert call (default 5000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--filtered", action="store_true", help="also time searches with a year filter")
    ap.add_argument("--skip-bundled", action="store_true")
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--store", type=Path, default=None,
                    help="an existing store of the bundled corpus (default: the shared benchmark store)")
    ap.add_argument("--cache-dir", type=Path, default=None, help="PAPERS_CACHE_DIR (default: benchmark cache)")
    ap.add_argument("--keep", action="store_true", help="keep the synthetic store")
    ap.add_argument("--existing", type=Path, default=None,
                    help="only warm search on this synthetic store folder (e.g. /tmp/pab-rss/syn-1000000)")
    args = ap.parse_args(argv)

    common.header("warm search latency")
    if args.existing:
        existing(args)
        common.footer()
        return 0
    if not args.skip_bundled:
        bundled(args)
    if not args.skip_synthetic:
        synthetic(args)
    common.footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
