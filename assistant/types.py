"""Frozen records passed between the pipeline's stages.

Paper -> Chunk (chunking) -> Hit (retrieval) -> Source (prompt) -> Answer with Citations.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Paper:
    """One paper of the collection, merged across every source it was read from."""

    paper_id: str
    title: str
    abstract: str
    authors: tuple[str, ...] = ()
    year: int | None = None
    url: str | None = None
    categories: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()  # file names the paper was read from, e.g. "000_f4c4.txt"
    # Identity and citation data (assistant/identity.py); None where the source had none.
    doi: str | None = None  # lower case, no resolver prefix: "10.18653/v1/n19-1423"
    arxiv_id: str | None = None  # no version: "2305.12345"
    citekey: str | None = None  # the BibTeX key (or RIS ID) of the entry it was read from
    bibtex: str | None = None  # the original BibTeX entry text, as the .bib file held it


@dataclass(frozen=True)
class Problem:
    """A record a reader could not use: rendered as `file:line: reason`."""

    path: str
    line: int
    reason: str
    records: int = 1  # records it stands for: a file that vanished mid-read counts all it held

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass(frozen=True)
class Chunk:
    """A piece of one paper's abstract; `text` is the abstract piece without the title."""

    chunk_id: str  # f"{paper_id}#{position}"
    paper_id: str
    title: str
    text: str
    position: int  # 0-based index of the chunk within its paper
    n_chunks: int
    year: int | None = None
    categories: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()

    @property
    def embed_text(self) -> str:
        """What the embedding model and BM25 see: the title, then the chunk."""
        return f"{self.title}\n{self.text}"


@dataclass(frozen=True)
class Hit:
    """One paper returned by retrieval, with its best-matching chunks (best first)."""

    rank: int
    paper_id: str
    title: str
    score: float  # fused score used for ranking (higher is better)
    chunks: tuple[Chunk, ...]
    dense_similarity: float | None = None  # best cosine similarity of the paper's chunks
    bm25_score: float | None = None  # best BM25 score of the paper's chunks
    year: int | None = None
    categories: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()

    @property
    def snippet(self) -> str:
        text = self.chunks[0].text if self.chunks else ""
        return text if len(text) <= 200 else text[:197].rstrip() + "..."


@dataclass(frozen=True)
class Source:
    """A paper that answers the question, numbered `[n]`: its evidence, quoted verbatim.

    `text` is what the answer quotes and what the model is shown: the abstract's sentences
    that bear on the question (evidence.py), joined by " … " where they are not adjacent.
    """

    n: int
    paper_id: str
    title: str
    text: str  # the quote: sentences of the abstract, verbatim
    score: float  # how strongly the evidence says this paper answers (0..1)
    year: int | None = None
    name: str = ""  # what the paper calls its method ("CoTTA"), when the title is long
    best: str = ""  # the quote's sentence the model reads for a list ("": its first part)


@dataclass(frozen=True)
class Related:
    """A paper close to the question that does not answer it: shown, never cited."""

    paper_id: str
    title: str
    year: int | None = None


@dataclass(frozen=True)
class Citation:
    """A valid `[n]` marker of an answer, mapped to the paper it cites."""

    n: int
    paper_id: str
    title: str
    quote: str  # the source text the model was given under [n]


@dataclass(frozen=True)
class Claim:
    """One statement of an answer and whether the sources it cites support it."""

    text: str  # as shown, with its marker(s)
    cites: tuple[int, ...]
    supported: bool
    reason: str = ""  # why not supported ("number(s) not in cited text: 48", ...)
    # "answer": a sentence of the direct answer, written by the model from the quotes;
    # "quote": a paper's evidence, copied from its abstract (supported by construction).
    origin: str = "answer"


@dataclass(frozen=True)
class Filters:
    """Restrict retrieval to papers matching every field that is set."""

    year_min: int | None = None
    year_max: int | None = None
    category: str | None = None  # e.g. "cs.CL"; matches one of the paper's categories
    source: str | None = None  # source file name the paper was read from

    def is_empty(self) -> bool:
        return not any((self.year_min, self.year_max, self.category, self.source))


@dataclass(frozen=True)
class Turn:
    """One earlier exchange of a conversation; `answer` is empty for a bare user turn.

    `papers`: the ids of the papers that answer, best first (those cited, then a list's `more`):
    what "it" and "they" of a follow-up refer to. Empty when unknown (a plain-text history): then the turn's question is
    searched again to find them."""

    question: str
    answer: str = ""
    papers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Retrieved:
    """First event of `Assistant.stream_events`: the evidence, decided before the model writes.

    The papers that answer are known here, each with its quote, so a UI can show them at once;
    the model then writes the direct answer over these quotes."""

    query: str  # standalone query actually searched
    hits: tuple[Hit, ...]
    sources: tuple[Source, ...]  # the papers that answer, with their quotes (empty: abstaining)
    retrieval_s: float
    related: tuple[Related, ...] = ()
    more: tuple[Source, ...] = ()  # papers that answer beyond the list's cap


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens the server reused from its prompt cache

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(self.prompt_tokens + other.prompt_tokens,
                     self.completion_tokens + other.completion_tokens,
                     self.cached_tokens + other.cached_tokens)


@dataclass(frozen=True)
class Timings:
    retrieval_s: float = 0.0
    first_token_s: float | None = None
    total_s: float = 0.0


@dataclass(frozen=True)
class Answer:
    """Everything known about one answered question."""

    question: str
    text: str
    citations: tuple[Citation, ...]
    sources: tuple[Source, ...]
    abstained: bool
    model: str
    usage: Usage = field(default_factory=Usage)
    timings: Timings = field(default_factory=Timings)
    query: str = ""  # the standalone query used for retrieval (rewritten from history)
    dropped_citations: int = 0  # [n] markers whose n was never given to the model
    # Every statement shown: the direct answer's sentences ("answer"), then each paper's quote
    # ("quote"); empty when abstaining.
    claims: tuple[Claim, ...] = ()
    closest: tuple[str, ...] = ()  # when abstaining: titles offered as "closest in the collection, not cited"
    closest_quotes: tuple[Source, ...] = ()  # ... each with its sentence nearest the question (uncited)
    related: tuple[Related, ...] = ()  # close papers that do not answer: shown, not cited
    more: tuple[Source, ...] = ()  # papers that answer beyond the list's cap ("/more" in chat)
    left_out: tuple[Claim, ...] = ()  # sentences the check did not support: not in `text`
    missing: tuple[str, ...] = ()  # when abstaining: the question's terms no paper has
    papers: tuple[Paper, ...] = ()  # the cited papers' records (authors, year, ids, BibTeX)

    @property
    def direct(self) -> tuple[Claim, ...]:
        """The opening: 1 to 3 cited sentences that answer the question itself."""
        return tuple(c for c in self.claims if c.origin == "answer")

    @property
    def evidence(self) -> tuple[Source, ...]:
        """The papers that answer, each with its quote (the same as `sources`)."""
        return self.sources

    @property
    def unsupported(self) -> tuple[Claim, ...]:
        """Statements the check did not support (left out of the text unless asked for)."""
        return self.left_out + tuple(c for c in self.claims if not c.supported)

    def to_markdown(self) -> str:
        """The question, the answer with its [n] markers, then the numbered references."""
        from .export import markdown

        return markdown(self)

    def bibtex(self) -> str:
        """BibTeX of the cited papers (a .bib paper's own entry, else a generated one)."""
        from .export import bibtex

        by_id = {p.paper_id: p for p in self.papers}
        return bibtex([by_id[s.paper_id] for s in self.sources if s.paper_id in by_id])

    def to_dict(self) -> dict[str, Any]:
        """The `papers ask --json` shape."""
        return {
            "question": self.question,
            "answer": self.text,
            "abstained": self.abstained,
            "citations": [
                {"n": c.n, "title": c.title, "paper_id": c.paper_id, "quote": c.quote}
                for c in self.citations
            ],
            "direct": [_claim(c) for c in self.direct],
            "evidence": [_source(s) for s in self.sources],
            "related": [{"title": r.title, "paper_id": r.paper_id, "year": r.year}
                        for r in self.related],
            "more": [_source(s) for s in self.more],
            "left_out": [_claim(c) for c in self.left_out],
            "claims": [_claim(c) for c in self.claims],
            "closest": list(self.closest),
            "closest_quotes": [{"title": s.title, "paper_id": s.paper_id, "year": s.year, "quote": s.text}
                               for s in self.closest_quotes],
            "missing": list(self.missing),
            "query": self.query,
            "usage": asdict(self.usage),
            "timings": asdict(self.timings),
            "model": self.model,
        }


def _claim(c: Claim) -> dict[str, Any]:
    return {"text": c.text, "cites": list(c.cites), "supported": c.supported, "reason": c.reason,
            "origin": c.origin}


def _source(s: Source) -> dict[str, Any]:
    return {"n": s.n, "title": s.title, "paper_id": s.paper_id, "year": s.year, "quote": s.text,
            "score": round(s.score, 4)}
