"""What a chunk's Chroma metadata holds, and a paper's state counted from it: pure functions
and records, no Chroma (store.py is the code that talks to it and re-exports these).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .identity import doi_key, implied_arxiv
from .types import Chunk, Filters, Paper

CAT, SRC = "cat:", "src:"

@dataclass(frozen=True)
class StoredChunk:
    """A chunk as read back from the store, with its stored metadata."""

    chunk: Chunk
    fingerprint: str


@dataclass(frozen=True)
class PaperState:
    fingerprint: str
    present: int  # chunks of the paper found in the store
    n_chunks: int  # chunks the paper should have (-1: chunks of two versions are mixed)
    last_position: int  # highest chunk position stored
    sources: str = ""  # the stored "sources" metadata: file names, one a line
    aliases: tuple[str, ...] = ()  # identities besides its id, from its first chunk (`_aliases`)

    @property
    def complete(self) -> bool:
        return self.present == self.n_chunks


@dataclass(frozen=True)
class Survey:
    """What one pass over every chunk found (`Store.survey`)."""

    papers: int  # distinct papers stored
    no_vector: list[str]  # ids of the chunks whose vector is missing
    unfinished: dict[str, PaperState]  # papers short of chunks, or holding chunks of two versions


# A paper's state while chunks are counted: fingerprint, present (with a vector), n_chunks
# (-1: mixed versions), last position, sources, aliases, chunks seen (with a vector or not).
_FP, _PRESENT, _N, _LAST, _SOURCES, _ALIASES, _SEEN = range(7)
# Papers one `where paper_id $in` asks for: ~1-3 chunks each, so one or two 1,000-chunk pages,
# and far below SQLite's 32,766 bound variables.
LOOKUP_IDS = 500


def _count(states: dict[str, list], meta: dict[str, Any], has_vector: bool,
           names: dict[str, str]) -> list:
    """Add one chunk to its paper's state in `states` (created on its first chunk); returns it.
    `names` keeps one string per distinct "sources" value (memory)."""
    sources = meta.get("sources", "")
    st = states.get(meta["paper_id"])
    if st is None:
        st = states[meta["paper_id"]] = [meta["fingerprint"], 0, meta["n_chunks"], 0,
                                         names.setdefault(sources, sources), (), 0]
    if st[_FP] != meta["fingerprint"]:  # chunks of two versions: never complete
        st[_N] = -1
    st[_PRESENT] += has_vector
    st[_SEEN] += 1
    st[_LAST] = max(st[_LAST], int(meta["position"]))
    if meta["position"] == 0:
        st[_ALIASES] = tuple(_aliases(meta))
    return st


def join_categories(categories: Sequence[str]) -> str:
    """Categories as one metadata string: space-separated ("cs.CL cs.LG") as always; one a line,
    each ending in a newline, when one holds a space (a keyword: "passive acoustics")."""
    if any(" " in c or "\n" in c for c in categories):
        return "".join(c.replace("\n", " ") + "\n" for c in categories)
    return " ".join(categories)


def split_categories(value: str) -> tuple[str, ...]:
    if "\n" in value:
        return tuple(c for c in value.split("\n") if c)
    return tuple(value.split())


def chunk_metadata(chunk: Chunk, paper: Paper, fingerprint: str) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "paper_id": chunk.paper_id,
        "title": chunk.title,
        "position": chunk.position,
        "n_chunks": chunk.n_chunks,
        "fingerprint": fingerprint,
        "authors": ", ".join(paper.authors),
        "url": paper.url or "",
        "sources": "\n".join(paper.sources),
        "categories": join_categories(paper.categories),
    }
    if chunk.year is not None:
        meta["year"] = chunk.year
    meta.update({CAT + c: True for c in chunk.categories})
    meta.update({SRC + s: True for s in chunk.sources})
    if chunk.position == 0:
        meta["abstract"] = paper.abstract
        meta.update(_paper_fields(paper))
    return meta


def _paper_fields(paper: Paper) -> dict[str, str]:
    """Identity and citation fields of the first chunk, only those the paper has."""
    fields = {"doi": paper.doi, "citekey": paper.citekey, "bibtex": paper.bibtex}
    if paper.arxiv_id and paper.arxiv_id != implied_arxiv(paper.paper_id):
        fields["arxiv_id"] = paper.arxiv_id
    return {k: v for k, v in fields.items() if v}


def _aliases(meta: dict[str, Any]) -> list[str]:
    """Identities a stored paper has besides its id (a DOI, an arXiv id its id does not say)."""
    found = [f"arxiv:{meta['arxiv_id']}"] if meta.get("arxiv_id") else []
    if meta.get("doi"):
        found.append(doi_key(meta["doi"]))
    return [a for a in found if a != meta["paper_id"]]


def chunk_from(chunk_id: str, document: str, meta: dict[str, Any]) -> Chunk:
    return Chunk(
        chunk_id=chunk_id,
        paper_id=meta["paper_id"],
        title=meta["title"],
        text=document,
        position=int(meta["position"]),
        n_chunks=int(meta["n_chunks"]),
        year=meta.get("year"),
        categories=split_categories(meta.get("categories", "")),
        sources=tuple(s for s in meta.get("sources", "").split("\n") if s),
    )


def where_filter(filters: Filters | None) -> dict[str, Any] | None:
    """Filters -> a Chroma `where` clause (None when nothing is filtered)."""
    if filters is None or filters.is_empty():
        return None
    clauses: list[dict[str, Any]] = []
    if filters.year_min is not None:
        clauses.append({"year": {"$gte": filters.year_min}})
    if filters.year_max is not None:
        clauses.append({"year": {"$lte": filters.year_max}})
    if filters.category:
        clauses.append({CAT + filters.category: True})
    if filters.source:
        clauses.append({SRC + filters.source: True})
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}



def matches(chunk: Chunk, filters: Filters | None) -> bool:
    """Whether a chunk passes `filters`: what `where_filter` asks Chroma for, in Python (a chunk
    without a year fails a year bound, as a Chroma `where` on it does). The BM25 side filters
    with it, and `Store.query` when it filters the nearest itself."""
    if filters is None:
        return True
    if filters.year_min is not None and (chunk.year is None or chunk.year < filters.year_min):
        return False
    if filters.year_max is not None and (chunk.year is None or chunk.year > filters.year_max):
        return False
    if filters.category and filters.category not in chunk.categories:
        return False
    return not (filters.source and filters.source not in chunk.sources)
