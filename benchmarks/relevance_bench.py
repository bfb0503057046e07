"""The abstention gate (assistant/relevance.py) per split and kind, and its calibration on dev.

    .venv/bin/python benchmarks/relevance_bench.py              # figures per split and kind
    .venv/bin/python benchmarks/relevance_bench.py --features   # the feature table of dev questions
    .venv/bin/python benchmarks/relevance_bench.py --grid       # thresholds searched on dev

No model server: the gate runs on retrieval only (the eval store, as benchmarks/retrieval_bench.py).
A follow-up is searched as its history and question joined (a stand-in for the model's rewrite).

Figures: false abstention rate (answerable questions the gate abstains on), abstain recall
(abstain questions it abstains on; near misses, tag "near_miss", also apart), and for answerable
questions the share of the gold papers among the hits that `kept` still holds, and |kept|.
The old gate (query-term coverage, Assistant.relevant before) is printed beside it.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from retrieval_bench import Bench, read_queries  # noqa: E402


def old_gate(query, hits, bm25) -> list:
    """Assistant.relevant before this change (min_coverage 0.30, min_similarity 0.35)."""
    if not hits:
        return []
    cov = [bm25.coverage(query, h.title + "\n" + " ".join(c.text for c in h.chunks)) for h in hits]
    dense = [h.dense_similarity or 0.0 for h in hits]
    cov_floor = max(0.75 * max(cov), 0.30)
    dense_floor = max(0.95 * max(dense), 0.35)
    return [h for h, c, d in zip(hits, cov, dense) if c >= cov_floor or d >= dense_floor]


class GateBench:
    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.hits = {q.id: bench.fused(q, k=bench.settings.k) for q in bench.queries}

    def run(self, queries, **overrides):
        """[(query, assessment)] under Settings overridden by `overrides`."""
        from assistant.relevance import assess

        s = self.bench.settings.model_copy(update=overrides) if overrides else self.bench.settings
        return [(q, assess(q.text, self.hits[q.id], self.bench.bm25, s)) for q in queries]

    def figures(self, runs) -> dict:
        ans = [(q, a) for q, a in runs if q.gold]
        abst = [(q, a) for q, a in runs if not q.gold]
        near = [(q, a) for q, a in abst if "near_miss" in q.tags]
        kept_recall = []
        for q, a in ans:
            in_hits = set(q.gold) & {h.title for h in self.hits[q.id]}
            if in_hits and a.answerable:
                kept_recall.append(len(in_hits & {h.title for h in a.kept}) / len(in_hits))
        return {
            "n_ans": len(ans), "far": sum(not a.answerable for _, a in ans) / max(len(ans), 1),
            "n_abs": len(abst), "abs_recall": sum(not a.answerable for _, a in abst) / max(len(abst), 1),
            "n_near": len(near), "near_recall": sum(not a.answerable for _, a in near) / max(len(near), 1),
            "kept_gold": sum(kept_recall) / max(len(kept_recall), 1),
            "kept_n": sum(len(a.kept) for _, a in ans if a.answerable) / max(sum(a.answerable for _, a in ans), 1),
        }


def _splits(queries) -> list[str]:
    order = ("dev", "test", "all", "search")
    return sorted({q.split for q in queries}, key=lambda s: order.index(s) if s in order else 9)


def table(gb: GateBench) -> None:
    rows = []
    for split in _splits(gb.bench.queries):
        qs = [q for q in gb.bench.queries if q.split == split]
        for kind in ["all"] + sorted({q.kind for q in qs}):
            group = [q for q in qs if kind == "all" or q.kind == kind]
            new = gb.figures(gb.run(group))
            old_abstains = [not old_gate(q.text, gb.hits[q.id], gb.bench.bm25) for q in group]
            old_far = [o for q, o in zip(group, old_abstains) if q.gold]
            old_rec = [o for q, o in zip(group, old_abstains) if not q.gold]
            near = [o for q, o in zip(group, old_abstains) if "near_miss" in q.tags]
            fmt = lambda xs: f"{sum(xs) / len(xs):.2f}" if xs else "-"  # noqa: E731
            rows.append((split, kind, len(group),
                         fmt(old_far), f"{new['far']:.2f}" if new["n_ans"] else "-",
                         fmt(old_rec), f"{new['abs_recall']:.2f}" if new["n_abs"] else "-",
                         fmt(near), f"{new['near_recall']:.2f}" if new["n_near"] else "-",
                         f"{new['kept_gold']:.2f}" if new["n_ans"] else "-",
                         f"{new['kept_n']:.1f}" if new["n_ans"] else "-"))
    common.table(["split", "kind", "n", "FAR old", "FAR new", "abst.rec old", "abst.rec new",
                  "near old", "near new", "kept gold", "|kept|"], rows)


def features(gb: GateBench, split: str) -> None:
    qs = [q for q in gb.bench.queries if q.split == split]
    rows = []
    for q, a in sorted(gb.run(qs), key=lambda qa: (bool(qa[0].gold), qa[1].dense)):
        tag = "near" if "near_miss" in q.tags else ""
        rows.append((q.id, q.kind, tag, round(a.dense, 3), round(a.coverage, 3), "y" if a.agree else "",
                     round(a.margin, 3), "y" if a.named else "", round(a.confidence, 2),
                     "answer" if a.answerable else "ABSTAIN", q.text[:60]))
    common.table(["id", "kind", "tag", "dense", "cov", "agree", "margin", "named", "conf", "gate", "question"],
                 rows)


GRID = {
    "gate_similarity": [0.40, 0.42, 0.44, 0.46, 0.50],
    "gate_coverage": [0.40, 0.50],
    "gate_min_similarity": [0.32, 0.34],
    "gate_margin": [0.03, 0.05, 1.0],
    "gate_agree": [False],
}


def grid(gb: GateBench, max_far: float = 0.05, top: int = 15) -> None:
    """Thresholds on the loaded questions: false abstention <= max_far first, then abstain recall."""
    qs = gb.bench.queries
    split = "+".join(sorted({q.split for q in qs}))
    results = []
    for values in itertools.product(*GRID.values()):
        cfg = dict(zip(GRID, values))
        f = gb.figures(gb.run(qs, **cfg))
        results.append((f["far"] <= max_far, f["abs_recall"], f["near_recall"], -f["far"], cfg, f))
    results.sort(key=lambda r: r[:4], reverse=True)
    best = results[0][:4]
    print(f"{sum(r[:4] == best for r in results)} configurations tie for best")
    print(f"grid on {split}: {len(qs)} questions; best {top} (false abstention <= {max_far} first)")
    common.table(["FAR", "abst.rec", "near rec", "config"],
                 [(round(f["far"], 3), round(f["abs_recall"], 3), round(f["near_recall"], 3), str(cfg))
                  for *_, cfg, f in results[:top]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--split", action="append", help="only this split (repeatable); default: all")
    ap.add_argument("--features", metavar="SPLIT", nargs="?", const="dev")
    ap.add_argument("--grid", action="store_true")
    args = ap.parse_args()
    gb = GateBench(Bench([q for q in read_queries(answerable_only=False) if not args.split or q.split in args.split],
                         args.cache_dir))
    if args.features:
        features(gb, args.features)
    elif args.grid:
        grid(gb)
    else:
        table(gb)
    print(f"\n(load {common.load_str()})")


if __name__ == "__main__":
    main()
