"""Does the collection answer this question? A decision on the retrieval evidence, before any model call.

`assess(query, hits, bm25, settings)` looks at four signals of the fused hits:

  dense      best cosine similarity (MiniLM) of any hit's chunk to the query
  coverage   best IDF-weighted share of the query's terms (and adjacent pairs) in one hit's text
  agree      the best dense paper is also the best lexical one (both retrievers point at it)
  margin     how far the best dense similarity stands above the next paper's
  named      the query names a paper by a name or acronym that paper defines ("TabPFN", "MSG")

and answers when any of these holds (thresholds in Settings, calibrated on the dev split; see
config.py for the numbers):

  named | dense >= gate_similarity | coverage >= gate_coverage
        | (dense >= gate_min_similarity and (margin >= gate_margin or (gate_agree and agree)))

A paraphrase shares few words with its paper (coverage ~0.1-0.3) but MiniLM still finds it
(dense 0.45-0.7); an off-topic question scores low on both. Near misses (the collection's
vocabulary, a topic it lacks) can pass on coverage: for those the answer step's per-source
check has the last word, so the thresholds favour keeping answerable questions answerable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import Settings
from .types import Hit


@dataclass(frozen=True)
class Assessment:
    answerable: bool
    kept: list[Hit]  # worth showing the model (answerable only), best first
    closest: list[Hit]  # the top hits, to offer as "closest, but not about this" when abstaining
    confidence: float  # 0..1; 0.5 is the decision boundary
    dense: float = 0.0
    coverage: float = 0.0
    agree: bool = False
    margin: float = 0.0
    named: bool = False
    reasons: tuple[str, ...] = field(default=())  # which rules said "answerable"

    def features(self) -> dict:
        return {"dense": round(self.dense, 3), "coverage": round(self.coverage, 3), "agree": self.agree,
                "margin": round(self.margin, 3), "named": self.named,
                "confidence": round(self.confidence, 3), "answerable": self.answerable}


def _text(hit: Hit) -> str:
    return hit.title + "\n" + " ".join(c.text for c in hit.chunks)


def assess(query: str, hits: list[Hit], bm25, settings: Settings | None = None,
           k: int | None = None) -> Assessment:
    """The abstention decision and the hits to show; deterministic for a given store."""
    s = settings or Settings()
    k = k or s.k
    closest = list(hits[:3])
    if not hits:
        return Assessment(False, [], [], 0.0)
    dense = [h.dense_similarity or 0.0 for h in hits]
    cov = [bm25.coverage(query, _text(h)) for h in hits]
    named_ids = set(bm25.named_papers(query, s.name_max_papers)) if s.name_weight > 0 else set()
    top_dense, top_cov = max(dense), max(cov)
    by_dense = sorted(range(len(hits)), key=lambda i: -dense[i])
    best_lex = max(range(len(hits)), key=lambda i: (cov[i], hits[i].bm25_score or 0.0))
    agree = by_dense[0] == best_lex and top_cov > 0
    margin = top_dense - (dense[by_dense[1]] if len(hits) > 1 else 0.0)
    named = any(h.paper_id in named_ids for h in hits)

    reasons = []
    if named:
        reasons.append("named")
    if top_dense >= s.gate_similarity:
        reasons.append("dense")
    if top_cov >= s.gate_coverage:
        reasons.append("coverage")
    # Between the floor and gate_similarity a paper must stand out: ahead of the next one by
    # gate_margin, or first for both retrievers. Near misses match several papers a little
    # (margin <= 0.025 on dev); a paraphrase usually matches its one paper best.
    if top_dense >= s.gate_min_similarity and (margin >= s.gate_margin or (agree and s.gate_agree)):
        reasons.append("margin" if margin >= s.gate_margin else "agree")
    # 0.5 at the nearest threshold; each rule's distance scaled by the spread seen on dev.
    confidence = max(
        1.0 if named else 0.0,
        0.5 + (top_dense - s.gate_similarity) / 0.4,
        0.5 + (top_cov - s.gate_coverage) / 0.8,
        min(0.5 + (top_dense - s.gate_min_similarity) / 0.4, 0.5 + (margin - s.gate_margin) / 0.2),
    )
    confidence = min(max(confidence, 0.0), 1.0)
    answerable = bool(reasons)
    kept: list[Hit] = []
    if answerable:
        # Keep a hit close to the best on either signal, or one the query names; drop the tail
        # that is off topic on both (the small model cites whatever it is shown).
        dense_floor = max(top_dense - s.keep_similarity_drop, s.keep_min_similarity)
        cov_floor = max(s.keep_coverage_ratio * top_cov, s.keep_min_coverage)
        kept = [h for h, d, c in zip(hits, dense, cov)
                if h.paper_id in named_ids or d >= dense_floor or c >= cov_floor][:k]
        if not kept:
            kept = hits[:1]
    return Assessment(answerable, kept, closest, confidence, top_dense, top_cov, agree, margin, named,
                      tuple(reasons))
