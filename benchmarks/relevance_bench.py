"""Which papers an answer cites (assistant/relevance.py), per split and kind; its thresholds chosen on dev.

    .venv/bin/python benchmarks/relevance_bench.py              # figures per split and kind
    .venv/bin/python benchmarks/relevance_bench.py --features   # each dev question's decision
    .venv/bin/python benchmarks/relevance_bench.py --grid       # thresholds searched on dev only

No model server: the decision runs on retrieval only (the eval store, as retrieval_bench.py).
A follow-up is searched as its history and question joined (what `Assistant.plan` searches
when no earlier answer says which papers "it" is).

Figures (answerable questions unless said):
  FAR        false abstention: the decision abstains
  abst.rec   abstain questions it abstains on; near = the near misses among them
  prec       cited papers that are gold or acceptable, per question, averaged
  extra      single-paper questions citing a paper outside gold + acceptable
  list rec   "which papers" questions: gold papers cited / min(|gold|, 8)
  |cited|    papers cited per answered question
--grid reads the dev split only: test and test2 are frozen and only reported.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from retrieval_bench import Bench, read_queries  # noqa: E402

LIST_CAP = 8


class DecisionBench:
    def __init__(self, bench: Bench, k: int) -> None:
        from assistant.similarity import Similarity

        self.bench = bench
        self.similarity = Similarity(bench.cache)  # what Assistant.assess passes
        self.hits = {q.id: bench.fused(q, k=k) for q in bench.queries}
        self.texts = {}
        for hits in self.hits.values():
            for h in hits:
                if h.paper_id not in self.texts:
                    p = bench.store.paper(h.paper_id)
                    self.texts[h.paper_id] = f"{p.title}\n{p.abstract}"

    def run(self, queries, **overrides):
        """[(query, assessment)] under Settings overridden by `overrides`."""
        from assistant.relevance import assess

        s = self.bench.settings.model_copy(update=overrides) if overrides else self.bench.settings
        return [(q, assess(q.text, self.hits[q.id], self.bench.bm25, s, self.texts, self.similarity))
                for q in queries]

    @staticmethod
    def figures(runs) -> dict:
        ans = [(q, a) for q, a in runs if q.gold]
        abst = [(q, a) for q, a in runs if not q.gold]
        near = [(q, a) for q, a in abst if "near_miss" in q.tags]
        answered = [(q, a) for q, a in ans if a.answerable]
        prec, extra, lrec = [], [], []
        for q, a in answered:
            ok = set(q.gold) | set(q.acceptable)
            titles = [h.title for h in a.cited]
            prec.append(sum(t in ok for t in titles) / len(titles))
            if len(q.gold) == 1 and "list" not in q.tags:
                extra.append(any(t not in ok for t in titles))
            if "list" in q.tags:
                lrec.append(len(set(q.gold) & set(titles)) / min(len(q.gold), LIST_CAP))
        mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
        return {
            "n": len(runs), "far": mean([not a.answerable for _, a in ans]),
            "abs_recall": mean([not a.answerable for _, a in abst]),
            "near_recall": mean([not a.answerable for _, a in near]),
            "prec": mean(prec), "extra": mean(extra), "list_recall": mean(lrec),
            "cited": mean([len(a.cited) for _, a in answered]),
        }


def _fmt(value: float) -> str:
    return "-" if value != value else f"{value:.2f}"


def table(db: DecisionBench) -> None:
    rows = []
    order = ("dev", "test", "test2")
    for split in sorted({q.split for q in db.bench.queries}, key=lambda s: order.index(s) if s in order else 9):
        qs = [q for q in db.bench.queries if q.split == split]
        for kind in ["all"] + sorted({q.kind for q in qs}):
            group = [q for q in qs if kind == "all" or q.kind == kind]
            f = db.figures(db.run(group))
            rows.append((split, kind, len(group), *(_fmt(f[k]) for k in (
                "far", "abs_recall", "near_recall", "prec", "extra", "list_recall", "cited"))))
    common.table(["split", "kind", "n", "FAR", "abst.rec", "near", "prec", "extra", "list rec",
                  "|cited|"], rows)


def features(db: DecisionBench, split: str) -> None:
    qs = [q for q in db.bench.queries if q.split == split]
    rows = []
    for q, a in db.run(qs):
        ok = set(q.gold) | set(q.acceptable)
        marks = "".join("G" if h.title in q.gold else "a" if h.title in ok else "." for h in a.cited)
        rows.append((q.id, q.kind, a.kind, round(a.dense, 2), round(a.coverage, 2),
                     round(a.margin, 2), ",".join(a.missing)[:20],
                     "answer" if a.answerable else "ABSTAIN", marks, q.text[:55]))
    common.table(["id", "kind", "asked", "dense", "cov", "margin", "missing", "decision", "cited",
                  "question"], rows)


GRID = {
    "gate_coverage": [0.35, 0.40, 0.45],
    "near_miss_coverage": [0.10, 0.15, 0.20],
    "near_miss_dense": [0.58, 0.62, 0.66],
    "list_score_ratio": [0.4, 0.5, 0.6],
    "list_coverage_ratio": [0.5, 0.6, 0.7, 0.8],
}


def objective(f: dict) -> float:
    """Higher is better: precision, list recall and abstention, false abstention weighing 3x."""
    return f["prec"] + f["list_recall"] + f["abs_recall"] - 3 * f["far"] - f["extra"]


def grid(db: DecisionBench, top: int = 12) -> None:
    qs = [q for q in db.bench.queries if q.split == "dev"]
    results = []
    for values in itertools.product(*GRID.values()):
        cfg = dict(zip(GRID, values))
        f = db.figures(db.run(qs, **cfg))
        results.append((objective(f), cfg, f))
    results.sort(key=lambda r: -r[0])
    print(f"grid on dev: {len(qs)} questions, {len(results)} configurations; best {top}:")
    common.table(["objective", "FAR", "abst", "near", "prec", "extra", "list", "config"],
                 [(round(o, 3), *(_fmt(f[k]) for k in ("far", "abs_recall", "near_recall", "prec",
                                                         "extra", "list_recall")), str(cfg))
                  for o, cfg, f in results[:top]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--split", action="append", help="only this split (repeatable); default: all")
    ap.add_argument("--features", metavar="SPLIT", nargs="?", const="dev")
    ap.add_argument("--grid", action="store_true", help="search thresholds on the dev split")
    args = ap.parse_args()
    splits = ["dev"] if args.grid else args.split
    queries = [q for q in read_queries(answerable_only=False) if q.split != "search"
               and (not splits or q.split in splits)]
    bench = Bench(queries, args.cache_dir)
    db = DecisionBench(bench, bench.settings.k)
    if args.features:
        features(db, args.features)
    elif args.grid:
        grid(db)
    else:
        table(db)
    print(f"\n(load {common.load_str()})")


if __name__ == "__main__":
    main()
