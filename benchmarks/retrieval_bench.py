"""Retrieval quality per split and kind: plain BM25 baseline, dense only, old hybrid, new hybrid.

    .venv/bin/python benchmarks/retrieval_bench.py            # the table (~1 min cold, ~15 s warm)
    .venv/bin/python benchmarks/retrieval_bench.py --grid     # choose the fusion weights on dev
    .venv/bin/python benchmarks/retrieval_bench.py --misses   # new hybrid's misses on dev

No model server: retrieval only. The store is the eval's (built from evals/embeddings.npz, as
`papers eval` does), so only the queries are embedded (MiniLM on CPU).

Questions: evals/questions.jsonl (answerable ones, by `split` and `kind`; a follow-up is
searched as its history and question joined, a stand-in for the model's rewrite) and
tests/data/search_questions.jsonl (split "search": written separately from the same corpus).

Methods:
  bm25 (t+a)  bm25s over one document per paper, title + abstract, no fusion (the baseline)
  dense       MiniLM chunks, paper rank = rank of its best chunk
  hybrid old  weighted RRF of dense and chunk BM25 (rrf_k 60, weights 1 / 1)
  hybrid new  the current Settings: RRF + title boost + defined-name boost
Metrics (answerable questions, paper level): recall@5, recall@10 = gold papers in the top k /
min(|gold|, k); MRR = 1 / rank of the first gold paper in the top 10.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

SEARCH_QUESTIONS = common.REPO / "tests" / "data" / "search_questions.jsonl"
OLD = {"rrf_k": 60, "dense_weight": 1.0, "bm25_weight": 1.0, "title_weight": 0.0, "name_weight": 0.0,
       "bm25_coverage_power": 0.0}


@dataclass
class Query:
    id: str
    split: str
    kind: str
    text: str
    gold: tuple[str, ...]
    tags: tuple[str, ...] = ()
    acceptable: tuple[str, ...] = ()
    dense: list = field(default_factory=list)
    sparse: list = field(default_factory=list)


def read_queries(path: Path = common.QUESTIONS, answerable_only: bool = True) -> list[Query]:
    out = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        q = json.loads(line)
        if answerable_only and not q.get("gold"):
            continue
        text = " ".join([*q.get("history", []), q["question"]])
        out.append(Query(q["id"], q.get("split", "all"), q["kind"], text, tuple(q.get("gold", [])),
                         tuple(q.get("tags", [])), tuple(q.get("acceptable", []))))
    if SEARCH_QUESTIONS.is_file():
        for i, line in enumerate(SEARCH_QUESTIONS.read_text().splitlines()):
            if line.strip():
                q = json.loads(line)
                out.append(Query(f"search-{i + 1:02d}", "search", q["kind"], q["question"], (q["title"],)))
    return out


class Bench:
    """The eval store, its retriever, and every query's dense and BM25 candidates, computed once."""

    def __init__(self, queries: list[Query], cache_dir=None) -> None:
        from assistant.evaluation.vectors import EmbeddingCache, eval_store
        from assistant.retrieval import BM25Index, Retriever
        from assistant.store import Store

        settings = common.make_settings(Path("."), cache_dir)
        self.cache = EmbeddingCache(common.REPO / "evals" / "embeddings.npz", settings)
        self.settings = eval_store(settings, self.cache)
        self.store = Store.open(self.settings)
        self.bm25 = BM25Index.for_store(self.store)
        self.retriever = Retriever(self.settings, self.store, self.cache, self.bm25)
        self.queries = queries
        vectors = self.cache([q.text for q in queries])
        n = self.settings.candidates
        for q, v in zip(queries, vectors):
            q.dense = self.store.query(v, n)
            q.sparse = self.bm25.search(q.text, n)
        self._baseline = None

    def fused(self, q: Query, k: int = 10, **overrides) -> list:
        from assistant.retrieval import Retriever

        s = self.settings.model_copy(update=overrides) if overrides else self.settings
        r = Retriever(s, self.store, self.cache, self.bm25)
        return r.fuse(q.dense, q.sparse, k, query=q.text)

    def titles(self, method: str, q: Query, **overrides) -> list[str]:
        if method == "bm25 (t+a)":
            return self.baseline(q.text)
        if method == "dense":
            return [h.title for h in self.fused(q, dense_weight=1.0, bm25_weight=0.0, title_weight=0.0,
                                                name_weight=0.0, bm25_coverage_power=0.0)]
        if method == "hybrid old":
            return [h.title for h in self.fused(q, **OLD)]
        return [h.title for h in self.fused(q, **overrides)]

    def baseline(self, query: str, k: int = 10) -> list[str]:
        """bm25s over title + abstract, one document per paper."""
        from assistant.retrieval import _tokenize

        if self._baseline is None:
            import bm25s

            docs = [(cs[0].title, " ".join(c.text for c in sorted(cs, key=lambda c: c.position)))
                    for cs in self.bm25.paper_chunks.values()]
            index = bm25s.BM25()
            index.index(_tokenize([f"{t}\n{a}" for t, a in docs], True), show_progress=False)
            self._baseline = (index, [t for t, _ in docs])
        index, titles = self._baseline
        ids, scores = index.retrieve(_tokenize([query], True), k=k, show_progress=False, n_threads=1)
        return [titles[i] for i, s in zip(ids[0], scores[0]) if s > 0]


def scores(titles: list[str], gold: tuple[str, ...]) -> tuple[float, float, float]:
    g = set(gold)
    r5 = len(g & set(titles[:5])) / min(len(g), 5)
    r10 = len(g & set(titles[:10])) / min(len(g), 10)
    rank = next((i for i, t in enumerate(titles[:10], 1) if t in g), None)
    return r5, r10, (1 / rank if rank else 0.0)


def evaluate(bench: Bench, method: str, queries: list[Query], **overrides) -> tuple[float, float, float]:
    rows = [scores(bench.titles(method, q, **overrides), q.gold) for q in queries]
    n = max(len(rows), 1)
    return tuple(sum(r[i] for r in rows) / n for i in range(3))


METHODS = ("bm25 (t+a)", "dense", "hybrid old", "hybrid new")


def table(bench: Bench) -> None:
    splits = sorted({q.split for q in bench.queries}, key=lambda s: ("dev", "test", "all", "search").index(s)
                    if s in ("dev", "test", "all", "search") else 9)
    rows = []
    for split in splits:
        qs = [q for q in bench.queries if q.split == split]
        groups = [("all", qs)] + [(k, [q for q in qs if q.kind == k]) for k in sorted({q.kind for q in qs})]
        tagged = sorted({t for q in qs for t in q.tags if t in ("acronym", "typo", "chatty")})
        groups += [(f"#{t}", [q for q in qs if t in q.tags]) for t in tagged]
        for kind, group in groups:
            cells = []
            for m in METHODS:
                r5, r10, mrr = evaluate(bench, m, group)
                cells.append(f"{r5:.2f} {r10:.2f} {mrr:.2f}")
            rows.append((split, kind, len(group), *cells))
    print("R@5 R@10 MRR per method")
    common.table(["split", "kind", "n", *METHODS], rows)


GRID = {
    "rrf_k": [10, 30, 60],
    "dense_weight": [1.0],
    "bm25_weight": [0.5, 1.0, 1.5],
    "bm25_coverage_power": [0.0, 1.0, 2.0, 3.0],
    "title_weight": [0.0, 0.25, 0.5, 1.0],
    "name_weight": [1.0, 2.0],
}


def grid(bench: Bench, split: str = "dev", top: int = 10) -> None:
    """Every combination of GRID on `split`; ranked by (MRR + R@5) / 2, ties by fewer knobs."""
    qs = [q for q in bench.queries if q.split == split]
    results = []
    keys = list(GRID)
    for values in itertools.product(*GRID.values()):
        cfg = dict(zip(keys, values))
        r5, r10, mrr = evaluate(bench, "hybrid new", qs, **cfg)
        results.append(((mrr + r5) / 2, r5, r10, mrr, cfg))
    results.sort(key=lambda r: -r[0])
    print(f"grid on {split} ({len(qs)} questions, {len(results)} configurations); best {top}:")
    common.table(["(MRR+R@5)/2", "R@5", "R@10", "MRR", "config"],
                 [(round(a, 3), round(b, 3), round(c, 3), round(d, 3), json.dumps(e)) for a, b, c, d, e in
                  results[:top]])


def misses(bench: Bench, split: str) -> None:
    for q in bench.queries:
        if q.split != split:
            continue
        got = bench.titles("hybrid new", q)
        base = bench.titles("bm25 (t+a)", q)
        r5, _, mrr = scores(got, q.gold)
        if mrr < 1:
            first = next((i for i, t in enumerate(got, 1) if t in q.gold), None)
            bfirst = next((i for i, t in enumerate(base, 1) if t in q.gold), None)
            print(f"{q.id} [{q.kind}] rank {first} (baseline {bfirst}): {q.text[:110]}")
            print(f"    gold: {q.gold[0][:70]}  top: {got[0][:70]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--split", action="append", help="only this split (repeatable); default: all")
    ap.add_argument("--grid", action="store_true", help="search the fusion weights on dev")
    ap.add_argument("--misses", metavar="SPLIT", help="print the new hybrid's misses on SPLIT")
    args = ap.parse_args()
    bench = Bench([q for q in read_queries() if not args.split or q.split in args.split], args.cache_dir)
    if args.grid:
        grid(bench)
    elif args.misses:
        misses(bench, args.misses)
    else:
        table(bench)
    print(f"\n(queries embedded live: {bench.cache.misses}; load {common.load_str()})")


if __name__ == "__main__":
    main()
