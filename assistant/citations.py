"""Citation markers in an answer -> Citations of the numbered sources; unknown numbers stripped.

Accepted forms: `[1]`, `[1, 3]`, `[1; 3]`, `[1][2]`, `[1-3]`, `[Source 2]`; four digits (`[2023]`)
are a year, not a source. A marker naming a
number that was never given to the model is removed from the text and counted in `dropped`, as
paper-qa strips unknown citation keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .text import MARKER, numbers_in, title_head
from .types import Citation, Source

__all__ = ["MARKER", "Parsed", "named", "numbers_in", "parse"]


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


def named(text: str, sources: tuple[Source, ...]) -> tuple[int, ...]:
    """The numbers of the sources a sentence without markers names, by short name ("DiffTPT"),
    title head ("CAFA" of "CAFA: Class-Aware ...") or whole title, as whole words: "TPT" is not
    named by "DiffTPT". A model cut off by its token limit before the markers wrote "DiffTPT
    improves zero-shot accuracy by an average of 5.13%, while TPT improves ... by 3.6% [1][2]"
    without them; the check then holds each name to its own quote.

    >>> named("DiffTPT beats TPT.", (Source(1, "a", "DiffTPT: ...", "", 1.0),))  # doctest: +SKIP
    (1,)
    """
    found = []
    for s in sources:
        names = {s.name, s.title, title_head(s.title)}
        if any(n and re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", text) for n in names):
            found.append(s.n)
    return tuple(found)
