"""Paper -> Chunks, with token counts from tiktoken (cl100k_base).

Sizes: see Settings.chunk_size (220 tokens, 40 overlap: a chunk plus its title fits the
embedding model's 256 word pieces whole). The title goes into every chunk's embedded text
(Chunk.embed_text) so a chunk from the middle of an abstract still says what paper it is about.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import lru_cache

from typing import TYPE_CHECKING

from .identity import implied_arxiv
from .types import Chunk, Paper

if TYPE_CHECKING:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

ENCODING = "cl100k_base"


@lru_cache(maxsize=4)
def _splitter(chunk_size: int, chunk_overlap: int) -> "RecursiveCharacterTextSplitter":
    # Imported here: 0.22 s that a no-op `papers ingest` or a search need not pay.
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    # Sentence boundaries first, then words: abstracts have no paragraphs. Special-token text
    # ("<|endoftext|>", quoted by papers about tokenizers) is counted as the plain text it is,
    # as token_counter does: tiktoken's default refuses it with an exception.
    return RecursiveCharacterTextSplitter.from_tiktoken_encoder(
        encoding_name=ENCODING,
        disallowed_special=(),
        chunk_size=chunk_size,
        chunk_overlap=min(chunk_overlap, chunk_size // 2),
        separators=["\n\n", "\n", ". ", "; ", ", ", " ", ""],
        keep_separator="end",
    )


def token_counter() -> Callable[[str], int]:
    """A function counting cl100k tokens (tiktoken must have been staged: assets.ensure_tiktoken)."""
    import tiktoken

    enc = tiktoken.get_encoding(ENCODING)
    return lambda text: len(enc.encode(text, disallowed_special=()))


def chunk_paper(paper: Paper, chunk_size: int, chunk_overlap: int) -> list[Chunk]:
    """Split one paper's abstract into Chunks that carry the paper's id, title and metadata."""
    pieces = [p.strip() for p in _splitter(chunk_size, chunk_overlap).split_text(paper.abstract)]
    pieces = [p for p in pieces if p] or [paper.abstract.strip() or paper.title]
    return [
        Chunk(
            chunk_id=f"{paper.paper_id}#{i}",
            paper_id=paper.paper_id,
            title=paper.title,
            text=piece,
            position=i,
            n_chunks=len(pieces),
            year=paper.year,
            categories=paper.categories,
            sources=paper.sources,
        )
        for i, piece in enumerate(pieces)
    ]


def paper_fingerprint(paper: Paper, chunk_size: int, chunk_overlap: int) -> str:
    """Hash of everything that decides a paper's stored chunks: changes => re-embed."""
    parts = [
        paper.title, paper.abstract, "|".join(paper.authors), str(paper.year), paper.url or "",
        "|".join(paper.categories), "|".join(paper.sources), f"{chunk_size}/{chunk_overlap}",
    ]
    # Identity and citation fields count only where a paper has them, and an arXiv id only
    # where its paper id does not say it: every paper stored before they existed keeps its
    # fingerprint, so an upgrade re-embeds nothing.
    arxiv = paper.arxiv_id if paper.arxiv_id != implied_arxiv(paper.paper_id) else None
    extra = {"doi": paper.doi, "arxiv": arxiv, "key": paper.citekey, "bib": paper.bibtex}
    parts += [f"{name}={value}" for name, value in extra.items() if value]
    # surrogatepass: a lone surrogate (only the Python API lets one in) hashes instead of raising
    return hashlib.sha1("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:16]
