"""Hybrid retrieval: dense (MiniLM in Chroma) + BM25 (bm25s) over chunks, fused at paper level.

Each retriever returns its top `candidates` chunks. A paper's rank in a retriever is the rank of
its best chunk among papers; the two paper rankings are fused by weighted reciprocal rank fusion:

    score(p) = w_dense / (rrf_k + rank_dense(p)) + w_bm25 / (rrf_k + rank_bm25(p))

Worked example (rrf_k=60, weights 1): paper A is 1st dense and 3rd BM25 -> 1/61 + 1/63 = 0.0323;
paper B is 2nd dense only -> 1/62 = 0.0161. A paper found by both beats one found by one, and the
exact similarity values (not comparable across retrievers) never matter. Scores are reported
divided by the best possible score (first in both), so 1.0 means "top of both lists".
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import Settings
from .store import Store
from .types import Chunk, Filters, Hit

_HYPHENATED = re.compile(r"\b(\w+)-(\w+)\b")


def bm25_text(text: str) -> str:
    """Hyphenated words also count joined and split: "pre-training" matches "pretraining"."""
    return _HYPHENATED.sub(r"\1\2 \1 \2", text.lower())


def _tokenize(texts: Sequence[str], return_ids: bool):
    import bm25s
    import Stemmer

    return bm25s.tokenize(
        [bm25_text(t) for t in texts], stopwords="en", stemmer=Stemmer.Stemmer("english"),
        show_progress=False, return_ids=return_ids,
    )


def _chunk_record(c: Chunk) -> dict:
    return {"id": c.chunk_id, "p": c.paper_id, "t": c.title, "x": c.text, "i": c.position,
            "n": c.n_chunks, "y": c.year, "c": list(c.categories), "s": list(c.sources)}


def _chunk_of(r: dict) -> Chunk:
    return Chunk(chunk_id=r["id"], paper_id=r["p"], title=r["t"], text=r["x"], position=r["i"],
                 n_chunks=r["n"], year=r["y"], categories=tuple(r["c"]), sources=tuple(r["s"]))


def matches(chunk: Chunk, filters: Filters | None) -> bool:
    """The BM25 side's equivalent of store.where_filter."""
    if filters is None:
        return True
    if filters.year_min is not None and (chunk.year is None or chunk.year < filters.year_min):
        return False
    if filters.year_max is not None and (chunk.year is None or chunk.year > filters.year_max):
        return False
    if filters.category and filters.category not in chunk.categories:
        return False
    return not (filters.source and filters.source not in chunk.sources)


class BM25Index:
    """bm25s over chunk texts (title + chunk), persisted beside the store, keyed by generation."""

    def __init__(self, retriever, chunks: list[Chunk], generation: str, df: dict[str, int]) -> None:
        self._retriever = retriever
        self.chunks = chunks
        self.generation = generation
        self._df = df  # stemmed term -> number of chunks containing it

    def coverage(self, query: str, text: str) -> float:
        """IDF-weighted share of the query's terms found in `text` (0..1).

        An absolute relevance signal that ranks (RRF) cannot give: "how do I bake sourdough
        bread" covers 0.0 of any abstract here ("sourdough" is unseen, so it weighs most), while
        "which papers study the stability gap?" covers ~0.8 of the right paper ("paper", "study"
        are common, so they weigh little).
        """
        words = _tokenize([query], False)[0]
        if not words:
            return 0.0
        seen = _tokenize([text], False)[0]
        n = max(len(self.chunks), 1)
        idf = {t: math.log(1 + n / (1 + self._df.get(t, 0))) for t in words}
        # Adjacent query words found adjacent in the text ("stability gap") count once more,
        # with the weight of their rarer word: phrases separate on-topic from merely related.
        present = set(seen) | set(zip(seen, seen[1:]))
        for pair in zip(words, words[1:]):
            idf[pair] = max(idf[pair[0]], idf[pair[1]])
        return sum(w for t, w in idf.items() if t in present) / sum(idf.values())

    @classmethod
    def build(cls, chunks: list[Chunk], generation: str) -> "BM25Index":
        import bm25s

        retriever = bm25s.BM25()
        df: Counter[str] = Counter()
        if chunks:
            tokens = _tokenize([c.embed_text for c in chunks], True)
            retriever.index(tokens, show_progress=False)
            words = {i: w for w, i in tokens.vocab.items()}
            for doc in tokens.ids:
                df.update(words[i] for i in set(doc))
        return cls(retriever, chunks, generation, dict(df))

    def save(self, folder: Path) -> None:
        """Write the index to a temporary folder beside `folder`, then swap it into place.

        A reader never sees a half-written index: it finds the old folder, the new one, or (for
        the instant between the two renames) none, and then builds its own from the store.
        """
        import shutil
        import uuid

        folder.parent.mkdir(parents=True, exist_ok=True)
        tag = uuid.uuid4().hex[:8]
        tmp = folder.with_name(f".{folder.name}.tmp-{tag}")
        old = folder.with_name(f".{folder.name}.old-{tag}")
        try:
            tmp.mkdir()
            if self.chunks:
                self._retriever.save(str(tmp / "bm25"))
            with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as fh:
                for c in self.chunks:
                    fh.write(json.dumps(_chunk_record(c), ensure_ascii=False) + "\n")
            (tmp / "df.json").write_text(json.dumps(self._df))
            meta = {"generation": self.generation, "chunks": len(self.chunks)}
            (tmp / "meta.json").write_text(json.dumps(meta))
            if folder.exists():
                folder.rename(old)
            tmp.rename(folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path, generation: str) -> "BM25Index | None":
        """The saved index when it matches the store's generation and is whole, else None."""
        import bm25s

        try:
            meta = (folder / "meta.json").read_text()
            if json.loads(meta)["generation"] != generation:
                return None
            with open(folder / "chunks.jsonl", encoding="utf-8") as fh:
                chunks = [_chunk_of(json.loads(line)) for line in fh]
            retriever = bm25s.BM25.load(str(folder / "bm25")) if chunks else bm25s.BM25()
            df = json.loads((folder / "df.json").read_text())
            # A truncated chunks.jsonl, or a save swapped in while we read: not this index.
            if json.loads(meta).get("chunks", len(chunks)) != len(chunks):
                return None
            if (folder / "meta.json").read_text() != meta:
                return None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return cls(retriever, chunks, generation, df)

    @classmethod
    def for_store(cls, store: Store, *, must_save: bool = False) -> "BM25Index":
        """The store's BM25 index: loaded from beside the store, or built from it and saved.

        Saving is a cache: a search on a read-only or full store still gets its index (built in
        memory); `must_save` (ingest) lets the OSError through, so the user learns of it.
        """
        folder = store.local_dir() / "bm25"
        index = cls.load(folder, store.generation)
        if index is None:
            index = cls.build(list(store.iter_chunks()), store.generation)
            try:
                index.save(folder)
            except OSError as exc:
                if must_save:
                    from .store import store_failure

                    raise (store_failure(exc, str(folder.parent)) or exc) from None
        return index

    def search(self, query: str, n: int, filters: Filters | None = None) -> list[tuple[Chunk, float]]:
        if not self.chunks:
            return []
        tokens = _tokenize([query], False)
        if not tokens[0]:
            return []
        mask = None
        if filters is not None and not filters.is_empty():
            mask = np.array([matches(c, filters) for c in self.chunks], dtype=np.float32)
        ids, scores = self._retriever.retrieve(
            tokens, k=min(n, len(self.chunks)), show_progress=False, weight_mask=mask, n_threads=1
        )
        return [(self.chunks[i], float(s)) for i, s in zip(ids[0], scores[0]) if s > 0]


@dataclass
class _PaperEvidence:
    chunks: dict[str, tuple[Chunk, float]]  # chunk_id -> (chunk, fused chunk score)
    dense: float | None = None  # best cosine similarity among the paper's chunks
    bm25: float | None = None  # best BM25 score among the paper's chunks
    fused: float = 0.0  # paper-level weighted RRF score


def _paper_ranks(results: list[tuple[Chunk, float]]) -> dict[str, int]:
    """paper_id -> 1-based rank of the paper's best chunk (results are sorted best first)."""
    ranks: dict[str, int] = {}
    for chunk, _ in results:
        ranks.setdefault(chunk.paper_id, len(ranks) + 1)
    return ranks


class Retriever:
    """Hybrid search over one store."""

    def __init__(self, settings: Settings, store: Store, embed: Callable, bm25: BM25Index) -> None:
        self.settings = settings
        self.store = store
        self._embed = embed
        self.bm25 = bm25

    def search(self, query: str, k: int | None = None, filters: Filters | None = None) -> list[Hit]:
        s = self.settings
        k = k or s.k
        dense = self.store.query(self._embed([query])[0], s.candidates, filters)
        sparse = self.bm25.search(query, s.candidates, filters)
        return self.fuse(dense, sparse, k)

    def fuse(self, dense, sparse, k: int) -> list[Hit]:
        s = self.settings
        evidence: dict[str, _PaperEvidence] = {}
        for results, weight, attr in ((dense, s.dense_weight, "dense"), (sparse, s.bm25_weight, "bm25")):
            ranks = _paper_ranks(results)
            for rank, (chunk, score) in enumerate(results, start=1):
                ev = evidence.setdefault(chunk.paper_id, _PaperEvidence({}))
                best = getattr(ev, attr)
                setattr(ev, attr, score if best is None else max(best, score))
                prev = ev.chunks.get(chunk.chunk_id, (chunk, 0.0))[1]
                ev.chunks[chunk.chunk_id] = (chunk, prev + weight / (s.rrf_k + rank))
            for paper_id, rank in ranks.items():
                evidence[paper_id].fused += weight / (s.rrf_k + rank)
        best_possible = (s.dense_weight + s.bm25_weight) / (s.rrf_k + 1) or 1.0
        ranked = sorted(evidence.items(), key=lambda kv: -kv[1].fused)[:k]
        hits = []
        for rank, (paper_id, ev) in enumerate(ranked, start=1):
            chunks = tuple(c for c, _ in sorted(ev.chunks.values(), key=lambda cs: -cs[1]))
            first = chunks[0]
            hits.append(Hit(
                rank=rank, paper_id=paper_id, title=first.title,
                score=ev.fused / best_possible, chunks=chunks,
                dense_similarity=ev.dense, bm25_score=ev.bm25, year=first.year,
                categories=first.categories, sources=first.sources,
            ))
        return hits
