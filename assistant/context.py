"""Hits -> numbered Sources that fit a token budget, with untrusted text neutralised.

The embedded model reads ~87 prompt tokens/s on 2 cores, so every 100 tokens of context cost
about a second before the first answer token. We keep, across the top papers, the sentences that
share the most (IDF-weighted) terms with the question, plus each abstract's first sentence (what
the paper is about), until the budget is spent; the rest is dropped and marked with "...".

Worked example (budget 60 tokens, two papers of three 25-token sentences): paper 1's first
sentence (bonus) and its best-matching sentence are kept (50 tokens); paper 2's first sentence
would overflow, so paper 2 gets nothing and is not shown to the model at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .text import clean, sentences
from .types import Hit, Source

# Sources are data: the model is told so (prompts/system.txt, rule 4), and the prompt's structure
# must hold whatever an abstract says. So nothing an abstract or title contains may look like
# our delimiters (<source id=..>, </source>), a chat-template token (<|im_start|>, [INST],
# <<SYS>>) or a role line ("System: ..."). Its words stay: a paper *about* prompt injection
# keeps every sentence (a blocklist of phrases deleted real sentences from 3 of the 399 bundled
# abstracts and still let paraphrases and other languages through).
_TAG = re.compile(r"</?\s*(abstract|source|sources|system|instructions?|user|assistant)\b[^>]*>",
                  re.IGNORECASE)
_TEMPLATE_TOKEN = re.compile(r"<\|[^|<>]{0,40}\|>|\[/?INST\]|<</?SYS>>", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")  # one line: no text can start a line ("System: ...") of its own
FIRST_SENTENCE_BONUS = 0.35  # the first sentence usually states what the paper does


def neutralise(text: str) -> str:
    """Untrusted text as one line of data: delimiter, template-token and control look-alikes
    blanked, every sentence kept."""
    text = _TEMPLATE_TOKEN.sub(" ", _TAG.sub(" ", clean(text)))
    return _WHITESPACE.sub(" ", text).strip()


@dataclass
class _Candidate:
    hit_index: int
    sentence_index: int
    text: str
    tokens: int
    score: float


def select_sources(
    hits: list[Hit],
    abstracts: dict[str, str],
    budget: int,
    count_tokens: Callable[[str], int],
    relevance: Callable[[str], float],
) -> tuple[Source, ...]:
    """Pick sentences of the hits' abstracts within `budget` tokens; number the kept papers 1..n."""
    candidates: list[_Candidate] = []
    for hi, hit in enumerate(hits):
        text = neutralise(abstracts.get(hit.paper_id) or " ".join(c.text for c in hit.chunks))
        for si, sent in enumerate(sentences(text)):
            score = relevance(sent) + (FIRST_SENTENCE_BONUS if si == 0 else 0.0)
            score *= 1.0 / (1.0 + 0.15 * hi)  # prefer better-ranked papers at equal relevance
            candidates.append(_Candidate(hi, si, sent, count_tokens(sent) + 1, score))
    header = {hi: count_tokens(_header(0, hit)) for hi, hit in enumerate(hits)}
    kept: dict[int, list[_Candidate]] = {}
    used = 0
    for cand in sorted(candidates, key=lambda c: -c.score):
        cost = cand.tokens + (header[cand.hit_index] if cand.hit_index not in kept else 0)
        if used + cost > budget:
            continue
        kept.setdefault(cand.hit_index, []).append(cand)
        used += cost
    sources = []
    for hi in sorted(kept):
        hit = hits[hi]
        parts = sorted(kept[hi], key=lambda c: c.sentence_index)
        text, last = "", -1
        for c in parts:
            gap = c.sentence_index != last + 1
            text += (" ... " if gap and last >= 0 else ("... " if gap else " ")) + c.text
            last = c.sentence_index
        sources.append(Source(n=len(sources) + 1, paper_id=hit.paper_id, title=hit.title,
                              text=text.strip(), score=hit.score, year=hit.year))
    return tuple(sources)


def _header(n: int, hit: Hit | Source) -> str:
    """What a source costs besides its sentences, reserved in the budget: its delimiters and its
    title (the line prompt no longer carries the title, but the recorded answers were selected
    with this reserve; changing it changes every source's sentences, and so every recording)."""
    year = f' year="{hit.year}"' if hit.year else ""
    return f'<source id="{n}"{year}>\nTitle: {hit.title}\nText: </source>'
