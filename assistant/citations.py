"""Citation markers in an answer -> Citations of the numbered sources; unknown numbers stripped.

Accepted forms: `[1]`, `[1, 3]`, `[1; 3]`, `[1][2]`, `[1-3]`, `[Source 2]`; four digits (`[2023]`)
are a year, not a source. A marker naming a
number that was never given to the model is removed from the text and counted in `dropped`, as
paper-qa strips unknown citation keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .text import MARKER, numbers_in
from .types import Citation, Source

__all__ = ["MARKER", "Parsed", "numbers_in", "parse"]



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
