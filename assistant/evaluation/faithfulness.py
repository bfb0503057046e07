"""Faithfulness: split an answer into statements, check each against the sources it cites.

RAGAS checks statements against everything retrieved; we check each statement only against the
text of the papers its own `[n]` markers cite, so a true claim pinned on the wrong paper fails.

The deterministic scorer (no model calls, same result every run) supports a statement when
  1. it cites at least one source,
  2. every number in it occurs in the cited text ("9,200" = "9200", "four" = "4"),
  3. every named term in it (acronyms, CamelCase, words with digits, capitalized words inside a
     sentence: "TabPFN", "GPT-4", "CodeBERT", "Thai") occurs in the cited text or title, and
  4. its embedding (MiniLM) has cosine similarity >= SIMILARITY_THRESHOLD with the best
     sentence of the cited text.
The threshold is calibrated on the hand-labelled statements in
tests/data/faithfulness_labels.jsonl (see `calibrate`); tests/test_evals.py re-derives it and
reports the agreement with the labels.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import numpy as np

from assistant.text import LEADING_MARKERS, MARKER, cited_numbers, sentences

# Calibrated on tests/data/faithfulness_labels.jsonl (the midpoint of the best-agreeing gap);
# test_threshold_is_calibrated re-derives it.
SIMILARITY_THRESHOLD = 0.47

EmbedFn = Callable[[list[str]], Sequence[Sequence[float]]]

# --------------------------------------------------------------------------- statements

_BULLET = re.compile(r"^\s*(?:[-*\u2022]+|\d+[.)])\s+")
_CONTENT = re.compile(r"[A-Za-z]{3,}")


@dataclass(frozen=True)
class Statement:
    """One claim of an answer: its text without markers and the source numbers it cites."""

    text: str
    cites: tuple[int, ...] = ()
    inherited: bool = False  # cites taken from a neighbouring sentence of the same paragraph


def citation_numbers(text: str) -> tuple[int, ...]:
    """The distinct `[n]` / `[n, m]` numbers in `text`, in order of appearance."""
    return cited_numbers(text)


def strip_markers(text: str) -> str:
    text = MARKER.sub("", text)
    text = re.sub(r"\s+([.,;:!?])", r"\1", text)
    return re.sub(r"\s{2,}", " ", text).strip()


def split_sentences(text: str) -> list[str]:
    """Sentences of one paragraph, each with its markers.

    A marker between two sentences belongs to the one before ("A claim. [2] Next claim."),
    unless the paragraph itself starts with a marker: then markers lead their sentences
    ("[1] One claim. [2] Another claim.").
    """
    leading_style = bool(LEADING_MARKERS.match(text))
    merged: list[str] = []
    for part in sentences(text):
        lead = LEADING_MARKERS.match(part)
        if lead and merged and not leading_style:  # "... a claim. [2] Next": [2] is the claim's
            merged[-1] = f"{merged[-1]} {lead.group(1).strip()}"
            part = part[lead.end():].strip()
            if not part:
                continue
        merged.append(part)
    return merged


# Words of sentences that only point at the sources ("This is stated in the first source.").
_META_WORDS = frozenset(
    """this that these it is are was were as stated state states mentioned mention described
    describe reported report shown show noted note given found see according in the a an of
    by to source sources first second third fourth fifth last above paper papers abstract
    abstracts text provided context information both claim claims made says said can be
    found from taken comes come""".split()
)


def _is_claim(sentence: str) -> bool:
    """Headings ("Here is what the papers say:"), fragments and pointers to the sources
    ("This is stated in [1].") are not claims."""
    bare = strip_markers(sentence)
    if bare.endswith(":") and not citation_numbers(sentence):
        return False
    words = [w.lower() for w in _CONTENT.findall(bare)]
    if words and all(w in _META_WORDS for w in words):
        return False
    return len(words) >= 3


def split_statements(answer: str) -> list[Statement]:
    """Statements of an answer: one per claim sentence, each with the `[n]` it cites.

    A sentence without markers takes the markers of the next cited sentence of its paragraph
    (a line: models often cite once at the end of a paragraph or list item), else of the
    previous one (the previous one first when the paragraph starts with a marker); a
    paragraph without any marker gives statements that cite nothing (scored unsupported).
    """
    out: list[Statement] = []
    for line in answer.strip().splitlines():  # a line is a paragraph (or a list item)
        line = _BULLET.sub("", line).strip()
        sentences = split_sentences(line) if line else []
        leading = bool(LEADING_MARKERS.match(line))
        claims = [s for s in sentences if _is_claim(s)]
        cites = [citation_numbers(s) for s in claims]
        for i, sentence in enumerate(claims):
            own, inherited = cites[i], False
            if not own:
                later = [c for c in cites[i + 1 :] if c]
                earlier = [c for c in cites[:i] if c]
                if leading and earlier:  # "[3] A claim. More on it. [4] ...": it is [3]'s
                    own, inherited = earlier[-1], True
                elif later or earlier:
                    own, inherited = (later[0] if later else earlier[-1]), True
            out.append(Statement(text=strip_markers(sentence), cites=own, inherited=inherited))
    return out


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
    words = {w.lower() for w in _WORDS.findall(text)}
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
    for sentence in split_sentences(text) or [text]:
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
    return False


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
    """Numbers, named terms and embedding similarity against the cited sources only."""

    embed: EmbedFn
    threshold: float = SIMILARITY_THRESHOLD
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def _vectors(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            for text, vec in zip(missing, self.embed(missing)):
                v = np.asarray(vec, dtype=np.float32)
                self._cache[text] = v / (np.linalg.norm(v) or 1.0)
        return np.stack([self._cache[t] for t in texts])

    def similarity(self, statement: str, sources: Sequence[CitedText]) -> float:
        pieces = [p for s in sources for p in source_sentences(s.title, s.text)]
        if not pieces:
            return 0.0
        vs = self._vectors([statement])[0]
        return float(np.max(self._vectors(pieces) @ vs))

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


# --------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class Calibration:
    threshold: float
    agreement: float  # share of labels the scorer agrees with at `threshold`
    n: int
    true_positive: int
    true_negative: int
    false_positive: int  # scorer says supported, label says unsupported
    false_negative: int

    @property
    def kappa(self) -> float:
        """Cohen's kappa between the scorer and the labels (agreement beyond chance)."""
        n = self.n or 1
        pred_yes = (self.true_positive + self.false_positive) / n
        label_yes = (self.true_positive + self.false_negative) / n
        chance = pred_yes * label_yes + (1 - pred_yes) * (1 - label_yes)
        return (self.agreement - chance) / (1 - chance) if chance < 1 else 1.0


def agreement_at(threshold: float, similarities: Sequence[float], gates_ok: Sequence[bool],
                 labels: Sequence[bool]) -> Calibration:
    tp = tn = fp = fn = 0
    for sim, ok, label in zip(similarities, gates_ok, labels):
        pred = ok and sim >= threshold
        tp += pred and label
        tn += (not pred) and (not label)
        fp += pred and not label
        fn += (not pred) and label
    n = len(labels)
    return Calibration(threshold, (tp + tn) / n if n else 0.0, n, tp, tn, fp, fn)


def calibrate(similarities: Sequence[float], gates_ok: Sequence[bool],
              labels: Sequence[bool]) -> Calibration:
    """The threshold (midpoint of a gap between observed similarities) agreeing most with labels.

    Ties go to the widest gap, so the threshold sits as far as possible from every labelled
    statement; it is rounded to 2 decimals.
    """
    points = sorted(set(round(s, 4) for s in similarities))
    candidates = [(points[0] - 0.05, 0.1)] if points else [(0.5, 0.0)]
    candidates += [((a + b) / 2, b - a) for a, b in zip(points, points[1:])]
    candidates += [(points[-1] + 0.05, 0.1)] if points else []
    best: tuple[float, float, float] | None = None
    for threshold, gap in candidates:
        score = agreement_at(threshold, similarities, gates_ok, labels).agreement
        key = (score, gap, -abs(threshold - 0.6))
        if best is None or key > best:
            best = key
            chosen = threshold
    return agreement_at(round(chosen, 2), similarities, gates_ok, labels)
