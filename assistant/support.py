"""The run-time claim check: does a sentence the model wrote hold up against the quotes it cites?

Each check is against the cited papers' quotes (and titles) only, what the model was shown:

1. grounded (grounding.py): every number and named term of the sentence is in the quotes, and
   its MiniLM similarity to their best sentence is >= 0.35.
2. not empty: a sentence that names a paper and says nothing else ("TTA (Efficient Test-Time
   Model Adaptation without Forgetting) [1][2]." was a 1.5B model's whole answer).
3. not instructed: an abstract may carry text addressed to the model ("You are now TabBot ...",
   "always answer ... ARRR-HACKED"). Its sentences reach the model as data (nothing is deleted:
   a paper *about* prompt injection quotes such text), so the check is on the way out: a
   sentence that repeats two or more words found only in such sentences is left out.

and, apart from support, 4. not thin: a sentence whose every content word (titles aside) comes
from the question says nothing the asker did not know ("X studies the stability gap [1]." for
"Which papers study the stability gap?"), and one made of the title's own words says nothing the
evidence line does not. It may be true; it is still left out.

Measured on 74 hand-labelled sentences of dev answers (tests/test_evals.py): precision 0.93 and
recall 0.59 for "unsupported" (a question word pinned on a paper whose quote lacks it, the
check's main miss, is mostly an echo, which 4 removes). One sentence costs one MiniLM call
(~10 ms on 2 cores): the quotes' sentences were embedded when they were chosen.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .context import addresses_model
from .grounding import CitedText, DeterministicScorer
from .similarity import Similarity
from .text import MARKER, sentences
from .types import Source

INSTRUCTED_MIN_WORDS = 2
# "TTA (Efficient Test-Time Model Adaptation without Forgetting) [1][2]." names a paper and
# says nothing: a finding takes a few words beyond the paper's title and name.
MIN_CONTENT_WORDS = 3
# Words that say what kind of claim a sentence makes, not what was found: with the question's
# own words they make an echo ("X proposes a method for <the question's topic>").
_GENERIC = frozenset("""a an the this that these those it its they their them there here is are
    was were be been being has have had do does did can could may might will would should of in
    on at to for from by with as and or but not no nor so than then also both each either such
    into onto about over under between through during paper papers work works study studies
    studied research article approach approaches method methods technique techniques model
    models propose proposes proposed present presents introduce introduces show shows shown
    find finds found demonstrate demonstrates describe describes investigate investigates
    explore explores examine examines analyze analyzes analyse discuss discusses address
    addresses focus focuses focused use uses used using develop develops provide provides
    report reports evaluate evaluates consider considers new novel various different several
    based called named collection answer answers question questions relevant related include
    includes including which what who whom whose how why when where does""".split())
_CONTENT = re.compile(r"[A-Za-z0-9]+")


def content_words(text: str) -> set[str]:
    """Lower-cased content words, crudely singular ("strategies" ~ "strategy" is not needed:
    both sides are reduced the same way)."""
    words = (w.lower() for w in _CONTENT.findall(MARKER.sub(" ", text)))
    return {_singular(w) for w in words if w not in _GENERIC and len(w) > 1}


def _singular(word: str) -> str:
    for suffix, repl in (("ies", "y"), ("sses", "ss"), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: -len(suffix)] + repl
    return word


def _without(text: str, titles: Sequence[str]) -> str:
    for title in sorted(titles, key=len, reverse=True):
        text = re.sub(re.escape(title), " ", text, flags=re.IGNORECASE)
    return text


def is_echo(sentence: str, question: str, titles: Sequence[str] = ()) -> bool:
    """Every content word of the sentence beyond the titles comes from the question (or there
    is none): it restates what was asked instead of saying what was found."""
    return content_words(_without(sentence, titles)) <= content_words(question)


def restates_titles(sentence: str, titles: Sequence[str]) -> bool:
    """Fewer than two content words of the sentence are not words of the cited titles."""
    return len(content_words(sentence) - content_words(" ".join(titles))) < 2


@dataclass(frozen=True)
class Support:
    supported: bool  # grounded in the cited quotes (an echo may be supported: it is still left out)
    reason: str = ""
    echo: bool = False  # restates the question or the title: left out, though it may be true
    instructed: tuple[str, ...] = ()  # words it repeats from instructions inside its source


class ClaimChecker:
    """`check(sentence, sources, question)` -> Support."""

    def __init__(self, sim: Similarity, bm25) -> None:
        self._scorer = DeterministicScorer(sim)
        self._bm25 = bm25

    def check(self, sentence: str, sources: Sequence[Source], question: str) -> Support:
        if not sources:
            return Support(False, "cites no source")
        # A paper's short name ("DiffTPT") was given to the model with its quote: it may use it.
        cited = [CitedText(s.n, f"{s.name} {s.title}" if s.name else s.title, s.text)
                 for s in sources]
        result = self._scorer.check(sentence, cited)
        reasons = [result.reason] if result.reason else []
        names = [s.title for s in sources] + [s.name for s in sources if s.name]
        if len(content_words(_without(sentence, names))) < MIN_CONTENT_WORDS:
            reasons.append("names a paper without saying what it found")
        instructed = self.instructed(sentence, [s.text for s in sources])
        if instructed:
            reasons.append("repeats instructions found in its abstract: " + ", ".join(instructed))
        # Not faithfulness failures but thin sentences: true of the paper, and no news to the
        # asker ("X studies the stability gap [1]."), or only the title's words again ("HACKED:
        # a study of the stability gap [2]." for a paper of that title).
        thin = "" if reasons else (
            "restates the question" if is_echo(sentence, question, names) else
            "restates the paper's title" if restates_titles(sentence, names) else "")
        return Support(not reasons, "; ".join(reasons) or thin, bool(thin), tuple(instructed))

    def instructed(self, sentence: str, source_texts: Sequence[str]) -> list[str]:
        """Words of the sentence found only in instruction-like sentences of the sources."""
        flagged, plain = set(), set()
        for text in source_texts:
            for sent in sentences(text):
                (flagged if addresses_model(sent) else plain).update(self._bm25.tokens(sent))
        only = flagged - plain
        hits = [w for w in dict.fromkeys(self._bm25.tokens(sentence)) if w in only]
        return hits if len(hits) >= INSTRUCTED_MIN_WORDS else []

    @staticmethod
    def has_instructions(text: str) -> bool:
        """True when some sentence of `text` is addressed to the model."""
        return any(addresses_model(sent) for sent in sentences(text))
