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

5. not pinned: a sentence that says the question's own words of a paper whose quote and title
   lack them ("... can render deaf people's hand gestures as ordinary written prose" of a paper
   on audio tests for blind students) claims what the question asked, not what was found.
6. no negation without ground: a sentence saying "not" / "never" / "cannot" of papers whose
   quotes say nothing negative ("does not consistently improve" of "consistently improves").

Measured on 74 hand-labelled sentences of dev answers (tests/test_evals.py): precision 0.94 and
recall 0.68 for "unsupported" (0.93 and 0.59 before 5; most of the rest are echoes, which 4
leaves out). One sentence costs one MiniLM call (~10 ms on 2 cores): the quotes' sentences
were embedded when they were chosen.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .context import addresses_model
from .grounding import CitedText, DeterministicScorer, source_numbers, statement_numbers
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
    includes including which what who whom whose how why when where does yes""".split())
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


# Pinned question words. A 1.5B model shown a paper that does not answer tends to write the
# question's words onto it: "Yes, the NLP-driven Computer-Based Test guide for visually
# impaired students can render deaf people's hand gestures as ordinary written prose" (dev
# para-23; the quote is about audio tests for blind students). Each word is compared by its
# first 5 letters ("rendered" ~ "render"), and "word error rate" counts as found where the
# quote says "WER". A sentence is unsupported when at least PINNED_MIN of the question's words
# it uses are in none of its quotes and titles, and they outnumber what it took from the quotes
# (words beyond the question and the titles, and numbers). On the 74 labelled dev sentences
# this takes the check's recall of "unsupported" from 0.59 to 0.68 (precision 0.93 -> 0.94).
PINNED_MIN = 2
_ACRONYM = re.compile(r"\b[A-Z]{2,6}s?\b")


def _stems(words: set[str]) -> set[str]:
    return {w[:5] for w in words}


def _spelled_out(sentence: str, evidence: str) -> set[str]:
    """Stems of the sentence's runs of words that spell an acronym of the evidence ("word
    error rate" for "WER")."""
    acronyms = {a.rstrip("s") for a in _ACRONYM.findall(evidence)}
    words = _CONTENT.findall(sentence)
    out: set[str] = set()
    for i in range(len(words)):
        for n in range(2, 7):
            run = words[i:i + n]
            if len(run) == n and "".join(w[0] for w in run).upper() in acronyms:
                out |= _stems({_singular(w.lower()) for w in run})
    return out


def pinned_words(sentence: str, question: str, evidence: str, names: Sequence[str]) -> list[str]:
    """The question's words a sentence says of its papers that their quotes and titles lack,
    longest first, when there are PINNED_MIN or more and they outnumber the words and numbers
    it found there ([] otherwise)."""
    words = {w[:5]: w for w in sorted(content_words(_without(sentence, names)))}
    said = set(words)
    asked = _stems(content_words(question))
    found = _stems(content_words(evidence)) | _spelled_out(sentence, evidence)
    pinned = (said & asked) - found
    titled = _stems(content_words(" ".join(names)))  # a title's words name the paper: no finding
    taken = (len((said - asked - titled) & found)
             + len(statement_numbers(sentence) & source_numbers(evidence)))
    if len(pinned) < PINNED_MIN or len(pinned) <= taken:
        return []
    return sorted((words[w] for w in pinned), key=lambda w: (-len(w), w))  # most specific first


def absent(words: Sequence[str], text: str) -> list[str]:
    """The words (compared as pinned_words compares them) that `text` does not have."""
    have = _stems(content_words(text))
    return [w for w in words if w[:5] not in have]


# Words that ask about a topic without naming it: "the Portuguese one", "always better",
# "the best optimizer". An abstract that lacks them says nothing about whether it answers.
_GENERAL = frozenset("""one ones always never better best worse worst good bad main major key
    important really actually generally usually often more less most least still ever""".split())


def unmentioned(question: str, text: str) -> list[str]:
    """The question's content words, as the question writes them, that `text` lacks (compared
    as pinned_words compares them), longest first; conversational framing ("hey", "quick")
    is not counted."""
    from .relevance import FRAMING

    have = _stems(content_words(text))
    words = [w for w in dict.fromkeys(_CONTENT.findall(MARKER.sub(" ", question)))
             if len(w) > 1 and w.lower() not in _GENERIC and w.lower() not in FRAMING
             and w.lower() not in _GENERAL]
    return sorted((w for w in words if _singular(w.lower())[:5] not in have),
                  key=lambda w: (-len(w), w.lower()))


def repeats(sentence: str, earlier: Sequence[str]) -> bool:
    """A sentence of 6+ content words that adds at most one to an earlier one's: the model
    said it again, often citing another paper ("Notably, TabPFN achieves very strong
    performance ... [2]." after the same sentence with [1])."""
    words = content_words(sentence)
    return len(words) >= 6 and any(len(words - content_words(e)) <= 1 for e in earlier)


def restates_titles(sentence: str, titles: Sequence[str]) -> bool:
    """Fewer than two content words of the sentence are not words of the cited titles."""
    return len(content_words(sentence) - content_words(" ".join(titles))) < 2


# A negation the quotes give no ground for: asked for "the weaknesses of MAE pre-pretraining", the
# model wrote that it "does not consistently improve" convergence, of a quote saying that it
# "consistently improves" it; every word is in the quote, so grounding passed it. A sentence
# that negates is unsupported when none of its quotes says anything negative.
_NEGATION = re.compile(r"\b(not|never|cannot|no longer)\b|n't\b", re.IGNORECASE)
_NEGATIVE = re.compile(r"\b(not|no|never|without|none|neither|nor|cannot|fail\w*|lack\w*|absence|"
                       r"instead|rather|unlike|only|limit\w*|unable|hinder\w*|hurt\w*|degrad\w*|"
                       r"drop\w*|worse|poor\w*|harm\w*|suffer\w*|challeng\w*)\b|n't\b", re.IGNORECASE)


def negates_unsaid(sentence: str, evidence: str) -> bool:
    """The sentence says "not" (or "never", "cannot") and its evidence says nothing negative."""
    return bool(_NEGATION.search(sentence)) and not _NEGATIVE.search(evidence)


@dataclass(frozen=True)
class Support:
    supported: bool  # grounded in the cited quotes (an echo may be supported: it is still left out)
    reason: str = ""
    echo: bool = False  # restates the question or the title: left out, though it may be true
    instructed: tuple[str, ...] = ()  # words it repeats from instructions inside its source
    pinned: tuple[str, ...] = ()  # the question's words it says of papers whose quotes lack them


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
        quotes = " ".join(s.text for s in sources)
        # A value is a finding however short the sentence: "UL2 has 20B parameters [1]."
        said = MARKER.sub(" ", _without(sentence, names))  # not "[1]", nor the 2 of "UL2"
        valued = bool(statement_numbers(said) & source_numbers(quotes))
        if len(content_words(said)) < MIN_CONTENT_WORDS and not valued:
            reasons.append("names a paper without saying what it found")
        if negates_unsaid(said, quotes):
            reasons.append("negates what its quote says")
        instructed = self.instructed(sentence, [s.text for s in sources])
        if instructed:
            reasons.append("repeats instructions found in its abstract: " + ", ".join(instructed))
        # Not faithfulness failures but thin sentences: true of the paper, and no news to the
        # asker ("X studies the stability gap [1]."), or only the title's words again ("HACKED:
        # a study of the stability gap [2]." for a paper of that title).
        echo = is_echo(sentence, question, names)
        pinned = [] if reasons or echo else pinned_words(
            sentence, question, " ".join([s.text for s in sources] + names), names)
        if pinned:
            reasons.append("says what the question asked of a paper whose quote does not ("
                           + ", ".join(pinned[:4]) + ")")
        thin = "" if reasons else (
            "restates the question" if echo else
            "restates the paper's title" if restates_titles(sentence, names) else "")
        return Support(not reasons, "; ".join(reasons) or thin, bool(thin), tuple(instructed),
                       tuple(pinned))

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
