"""A paper's identity: its arXiv id or its DOI where it has one, else its title.

Every reader and the ingest's match against the store use these, so the same paper gets the same
id from a .bib, a RIS file, a JSONL file or the arXiv snapshot:

- `arxiv:<id>` (no version) when an arXiv id is known: eprint, arXiv DOI (10.48550/arXiv.X),
  an arxiv.org URL, or "arXiv preprint arXiv:X" as Google Scholar writes it;
- else `doi:<doi>` (lower case: DOIs are case-insensitive) when a DOI is known;
- else `t:` + a hash of the normalized title (corpus.paper_id_for).
"""

from __future__ import annotations

import re
from typing import Any

from .types import Paper

# An arXiv id as written in the wild: "2305.12345v2", "arXiv:2305.12345", an abs/pdf URL, or the
# old style "hep-th/9901001" / "math.GT/0309136"; group 1 is the id without its version.
ARXIV_IN = re.compile(
    r"(?:arxiv:|https?://(?:www\.|export\.)?arxiv\.org/(?:abs|pdf)/)?"
    r"(\d{4}\.\d{4,5}|[a-z][a-z.-]*/\d{7})(?:v\d+)?(?:\.pdf)?/?",
    re.IGNORECASE,
)
# The same inside free text ("arXiv preprint arXiv:2305.12345", "arXiv:2305.12345 [cs]",
# Semantic Scholar's "abs/2305.12345"): a prefix is required so a page range is not an id.
_ARXIV_IN_TEXT = re.compile(
    r"(?:arxiv[:\s]\s*|arxiv\.org/(?:abs|pdf)/|\babs/)"
    r"(\d{4}\.\d{4,5}|[a-z][a-z.-]*/\d{7})(?:v\d+)?",
    re.IGNORECASE,
)
# 10.<registrant>/<suffix>, after an optional resolver URL or "doi:" prefix.
_DOI = re.compile(r"(?:https?://(?:dx\.)?doi\.org/|doi:\s*)?(10\.\d{4,9}/\S+)", re.IGNORECASE)
_ARXIV_DOI = re.compile(r"10\.48550/arxiv\.(.+)", re.IGNORECASE)


def arxiv_id(value: Any) -> str | None:
    """The bare arXiv id (no "arxiv:" prefix, no version) of an id or URL, else None."""
    if not isinstance(value, str):
        return None
    match = ARXIV_IN.fullmatch(value.strip())
    return match.group(1) if match else None


def arxiv_in_text(value: Any) -> str | None:
    """An arXiv id named inside free text ("arXiv preprint arXiv:2305.12345"), else None."""
    if not isinstance(value, str):
        return None
    match = _ARXIV_IN_TEXT.search(value)
    return match.group(1) if match else None


def doi(value: Any) -> str | None:
    """The DOI in a DOI field or a doi.org URL, as written, without trailing punctuation.

    DOIs are case-insensitive: ids and matching use `doi_key`, the lower-case form.
    """
    if not isinstance(value, str):
        return None
    match = _DOI.search(value.strip())
    return match.group(1).rstrip(".,;") if match else None


def doi_key(value: str) -> str:
    """The identity of a DOI: "doi:" + its lower-case form."""
    return f"doi:{value.lower()}"


def arxiv_of_doi(value: str | None) -> str | None:
    """arXiv's own DOIs (10.48550/arXiv.2305.12345) name an arXiv id: that id, else None."""
    match = _ARXIV_DOI.fullmatch(value or "")
    return arxiv_id(match.group(1)) if match else None


def implied_arxiv(paper_id: str) -> str | None:
    """The arXiv id an `arxiv:` paper id carries, else None."""
    return paper_id[len("arxiv:"):] if paper_id.startswith("arxiv:") else None


def identities(paper: Paper) -> tuple[str, ...]:
    """The ids this paper is known by besides its title: "arxiv:X", "doi:Y" (either may lack)."""
    found = []
    if paper.arxiv_id:
        found.append(f"arxiv:{paper.arxiv_id}")
    if paper.doi:
        found.append(doi_key(paper.doi))
    return tuple(found)


def rank(paper_id: str) -> int:
    """Which id a merged paper keeps: an arXiv id beats a DOI, which beats a title hash."""
    return 2 if paper_id.startswith("arxiv:") else 1 if paper_id.startswith("doi:") else 0
