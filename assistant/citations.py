"""Citation markers in an answer -> Citations of the numbered sources; unknown numbers stripped.

Accepted forms: `[1]`, `[1, 3]`, `[1; 3]`, `[1][2]`, `[1-3]`, `[Source 2]`; four digits (`[2023]`)
are a year, not a source. A marker naming a
number that was never given to the model is removed from the text and counted in `dropped`, as
paper-qa strips unknown citation keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .text import MARKER, numbers_in, sentences
from .types import Citation, Source

__all__ = ["MARKER", "Parsed", "numbers_in", "attribute", "has_words", "parse"]



@dataclass(frozen=True)
class Parsed:
    text: str  # answer with invalid markers removed and valid ones normalised to [n]
    citations: tuple[Citation, ...]  # valid citations, in order of first use
    dropped: int  # markers (numbers) that named no source


def parse(text: str, sources: tuple[Source, ...]) -> Parsed:
    by_n = {s.n: s for s in sources}
    cited: dict[int, Citation] = {}
    dropped = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal dropped
        good = []
        for n in numbers_in(match.group(1)):
            if n in by_n:
                good.append(n)
                s = by_n[n]
                cited.setdefault(n, Citation(n=n, paper_id=s.paper_id, title=s.title, quote=s.text))
            else:
                dropped += 1
        return "".join(f"[{n}]" for n in dict.fromkeys(good))

    cleaned = MARKER.sub(replace, text)
    cleaned = re.sub(r"[ \t]+([.,;:])", r"\1", cleaned)  # "claim [9]." -> "claim ." -> "claim."
    return Parsed(text=cleaned.strip(), citations=tuple(cited.values()), dropped=dropped)


ATTRIBUTION_MIN = 0.5  # share of a sentence's (IDF-weighted) terms a source must contain


def attribute(text: str, sources: tuple[Source, ...], coverage) -> str:
    """Add `[n]` to sentences that make a claim without citing, when one source clearly holds it.

    `coverage(sentence, source_text)` is the IDF-weighted share of the sentence's terms found in
    the source (retrieval.BM25Index.coverage). A sentence that names a source's title, or whose
    terms are >= 50% in one source, gets that source's number; other uncited sentences are left
    as they are (they count as unsupported in the evals). Sentences already citing are untouched.
    """
    if not sources:
        return text
    lines = [_attribute_line(line, sources, coverage) for line in text.strip().split("\n")]
    return "\n".join(lines)


def _attribute_line(line: str, sources: tuple[Source, ...], coverage) -> str:
    out = []
    for sentence in sentences(line):
        if MARKER.search(sentence) or len(sentence.split()) < 4:
            out.append(sentence)
            continue
        named = [s.n for s in sources if s.title.lower()[:60] in sentence.lower()]
        if not named:
            scores = [(coverage(sentence, f"{s.title} {s.text}"), s.n) for s in sources]
            best, n = max(scores)
            named = [n] if best >= ATTRIBUTION_MIN else []
        if named:
            body = sentence.rstrip()
            end = body[-1] if body[-1:] in ".!?;" else ""
            body = body[: len(body) - len(end)] if end else body
            sentence = body + "".join(f" [{n}]" for n in named[:3]) + end
        out.append(sentence)
    return " ".join(out)

def has_words(text: str) -> bool:
    """True when the text says something besides citation markers."""
    return bool(re.search(r"[A-Za-z]{2}", MARKER.sub("", text)))
