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
    """A numbered source as shown to the model: `[n]` in the prompt and the answer."""

    n: int
    paper_id: str
    title: str
    text: str  # the retrieved (possibly trimmed) text given to the model
    score: float
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
    """One line of an answer and whether the source it cites supports it."""

    text: str  # as shown, with its marker(s)
    cites: tuple[int, ...]
    supported: bool
    reason: str = ""  # why not supported ("number(s) not in cited text: 48", ...)
    # "generated": written from that source alone (the citation is known by construction);
    # "model": a marker the model wrote; "attributed": added by citations.attribute.
    origin: str = "generated"


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
    """One earlier exchange of a conversation; `answer` is empty for a bare user turn."""

    question: str
    answer: str = ""


@dataclass(frozen=True)
class Retrieved:
    """First event of `Assistant.stream_events`: what will be read, before the model writes."""

    query: str  # standalone query actually searched
    hits: tuple[Hit, ...]
    sources: tuple[Source, ...]  # numbered sources the prompt will hold (empty: abstaining)
    retrieval_s: float


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
    claims: tuple[Claim, ...] = ()  # the answer's lines with their support (empty: abstained)
    closest: tuple[str, ...] = ()  # when abstaining: titles offered as "closest, but not about this"

    @property
    def unsupported(self) -> tuple[Claim, ...]:
        return tuple(c for c in self.claims if not c.supported)

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
            "sources": [
                {"n": s.n, "title": s.title, "paper_id": s.paper_id, "score": round(s.score, 4)}
                for s in self.sources
            ],
            "claims": [
                {"text": c.text, "cites": list(c.cites), "supported": c.supported,
                 "reason": c.reason, "origin": c.origin}
                for c in self.claims
            ],
            "closest": list(self.closest),
            "usage": asdict(self.usage),
            "timings": asdict(self.timings),
            "model": self.model,
        }
