"""The deterministic check: does a statement hold up against the text it cites?

No model call and the same verdict every run. A statement is supported by its cited texts when
  1. it cites at least one,
  2. every number in it occurs in them ("9,200" = "9200", "four" = "4"),
  3. every named term in it (acronyms, CamelCase, words with digits, capitalized words inside a
     sentence: "TabPFN", "GPT-4", "CodeBERT", "Thai") occurs in them or their titles, and
  4. its embedding (MiniLM) has cosine similarity >= SIMILARITY_THRESHOLD with their best
     sentence.
The answer runs it on every sentence the model writes (support.py); the eval suite scores
answers with it (assistant/evaluation/faithfulness.py), where the threshold is calibrated on
hand-labelled statements. Run-time code never imports the eval package: the check lives here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from .similarity import EmbedFn, Similarity
from .text import MARKER, sentences

# Calibrated on tests/data/answer_statement_labels.jsonl: 74 sentences the model wrote for dev
# questions, labelled by hand against the quotes they cite. 0.30-0.35 agree best (the old
# 0.47, fitted to whole answer lines, rejected true short sentences such as "SiMHand reports
# a gain of 15% on FreiHand [1]", similarity 0.37); tests/test_evals.py re-derives it.
SIMILARITY_THRESHOLD = 0.35


def strip_markers(text: str) -> str:
    text = MARKER.sub("", text)
    text = re.sub(r"\s+([.,;:!?])", r"\1", text)
    return re.sub(r"\s{2,}", " ", text).strip()


# --------------------------------------------------------------------------- numbers and terms

_NUMBER_WORDS = {
    "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8",
    "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "fifteen": "15", "twenty": "20",
    "thirty": "30", "forty": "40", "fifty": "50", "hundred": "100", "thousand": "1000",
    "fourteen": "14", "eighteen": "18", "half": "0.5", "twice": "2", "double": "2",
    "doubles": "2", "triple": "3",
}
# A number standing alone (not part of a name such as GPT-4, T5, Llama-3 or wav2vec).
_STATEMENT_NUMBER = re.compile(r"(?<![\w.\-/])(\d+(?:[.,]\d+)*)(?![\w.,]*-)(?![.,]?\d)")
_ANY_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# "5 700times", "1 000 training points": thousands separated by a space
_SPACED_THOUSANDS = re.compile(r"(?<![\d.])\d{1,3}(?: \d{3})+(?![\d.])")
_WORDS = re.compile(r"[A-Za-z]+")


def _norm_number(token: str) -> str | None:
    token = token.strip(".,")
    if re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?", token):
        token = token.replace(",", "")
    token = token.replace(",", ".") if re.fullmatch(r"\d+,\d{1,2}", token) else token
    try:
        value = Decimal(token)
    except InvalidOperation:
        return None
    return format(value.normalize(), "f")


def statement_numbers(text: str) -> set[str]:
    """Normalized numbers a statement asserts (digits and number words)."""
    found = {n for t in _STATEMENT_NUMBER.findall(text) if (n := _norm_number(t))}
    found.discard("0")
    # "four-legged", "two-stage": a number word inside a compound is a word, not a count
    words = {w.lower() for w in _WORDS.findall(re.sub(r"\w+(?:-\w+)+", " ", text))}
    found |= {_NUMBER_WORDS[w] for w in words if w in _NUMBER_WORDS and w not in _SOFT_NUMBERS}
    return found


# Number words that also have non-numeric uses: counted in sources, never required of statements.
_SOFT_NUMBERS = {"half", "double", "doubles", "twice", "triple", "hundred", "thousand"}


def source_numbers(text: str) -> set[str]:
    """Every number occurring in a source (lenient: digits inside names count too)."""
    found = {n for t in _ANY_NUMBER.findall(text) if (n := _norm_number(t))}
    found |= {n for t in _SPACED_THOUSANDS.findall(text) if (n := _norm_number(t.replace(" ", "")))}
    for token in re.findall(r"\d+(?:\.\d+)?(?=\s*%)", text):  # "10%" and "0.1" both
        if (n := _norm_number(token)) is not None:
            found.add(n)
    found |= {_NUMBER_WORDS[w.lower()] for w in _WORDS.findall(text) if w.lower() in _NUMBER_WORDS}
    return found


# Capitalized words that are not names (sentence starts are skipped anyway).
_COMMON_CAPS = frozenset(
    """The This These That Those Its It In On For With By From To Of And Or But However Both
    Each Also Moreover Furthermore Additionally Overall Finally First Second Third They Their We
    Our Using Based While Unlike Like Although According Specifically Notably As At An A Another
    Such Some Other Paper Papers Source Sources Study Studies Research Authors Model Models
    Method Methods Approach Results Result Work Section Table Figure I""".split()
)
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-+./]*[A-Za-z0-9+]|[A-Za-z]")


def named_terms(text: str) -> list[str]:
    """Names a statement relies on: acronyms, CamelCase, letters+digits, inner capitalized words."""
    terms: list[str] = []
    for sentence in sentences(text) or [text]:
        tokens = list(_TOKEN.finditer(sentence))
        for i, match in enumerate(tokens):
            tok = match.group(0).strip(".-/")
            if not tok or tok.isdigit() or _STATEMENT_NUMBER.fullmatch(tok):
                continue
            has_digit = any(c.isdigit() for c in tok) and any(c.isalpha() for c in tok)
            inner_caps = sum(c.isupper() for c in tok[1:]) >= 1 and any(c.islower() for c in tok)
            acronym = sum(c.isupper() for c in tok) >= 2
            capitalized = tok[0].isupper() and i > 0 and tok not in _COMMON_CAPS
            if re.fullmatch(r"\d+(?:\.\d+)?(?:[xX%]|times|[KMBT])", tok):
                continue  # "2.4x", "200K": a number with a unit, checked as a number
            if has_digit or inner_caps or acronym or capitalized:
                if tok not in terms and tok.lower() not in {t.lower() for t in terms}:
                    terms.append(tok)
    return terms


def _squash(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", text.casefold())


def term_in(term: str, squashed_source: str) -> bool:
    t = _squash(term)
    if not t:
        return True
    if t in squashed_source:
        return True
    if t.endswith("s") and len(t) > 3 and t[:-1] in squashed_source:  # "Transformers"
        return True
    parts = [_squash(p) for p in term.split("-")]  # "LLM-generated": its words, apart
    return len(parts) > 1 and all(p in squashed_source for p in parts if p)


# --------------------------------------------------------------------------- scoring

def source_sentences(title: str, text: str) -> list[str]:
    """The title, then the sentences of a source's text (fragments of <= 20 characters dropped)."""
    return [title, *(s for s in sentences(text) if len(s) > 20)]


@dataclass(frozen=True)
class Check:
    """The deterministic verdict on one statement."""

    supported: bool
    similarity: float
    missing_numbers: tuple[str, ...] = ()
    missing_terms: tuple[str, ...] = ()
    reason: str = ""

    def to_dict(self) -> dict:
        return {
            "supported": self.supported,
            "similarity": round(self.similarity, 4),
            "missing_numbers": list(self.missing_numbers),
            "missing_terms": list(self.missing_terms),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class CitedText:
    """The text a statement may be checked against: one cited source."""

    n: int
    title: str
    text: str


@dataclass
class DeterministicScorer:
    """Numbers, named terms and embedding similarity against the cited sources only.

    `embed` is an embedding function or a `Similarity` (whose vectors it then shares)."""

    embed: EmbedFn | Similarity
    threshold: float = SIMILARITY_THRESHOLD
    _sim: Similarity = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._sim = self.embed if isinstance(self.embed, Similarity) else Similarity(self.embed)

    def similarity(self, statement: str, sources: Sequence[CitedText]) -> float:
        pieces = [p for s in sources for p in source_sentences(s.title, s.text)]
        if not pieces:
            return 0.0
        return float(self._sim.sims(statement, pieces).max())

    def gates(self, statement: str,
              sources: Sequence[CitedText]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(numbers, terms) of the statement that the cited text does not contain."""
        text = " ".join(f"{s.title}. {s.text}" for s in sources)
        have = source_numbers(text)
        numbers = tuple(sorted(n for n in statement_numbers(statement) if n not in have))
        squashed = _squash(text)
        terms = tuple(t for t in named_terms(statement) if not term_in(t, squashed))
        return numbers, terms

    def check(self, statement: str, sources: Sequence[CitedText]) -> Check:
        statement = strip_markers(statement)
        if not sources:
            return Check(False, 0.0, reason="cites no source")
        numbers, terms = self.gates(statement, sources)
        sim = self.similarity(statement, sources)
        reasons = []
        if numbers:
            reasons.append("number(s) not in cited text: " + ", ".join(numbers))
        if terms:
            reasons.append("term(s) not in cited text: " + ", ".join(terms))
        if sim < self.threshold:
            reasons.append(f"similarity {sim:.2f} < {self.threshold:.2f}")
        return Check(not reasons, sim, numbers, terms, "; ".join(reasons))
