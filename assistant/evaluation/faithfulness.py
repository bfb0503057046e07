"""Faithfulness: split an answer into statements, check each against the sources it cites.

RAGAS checks statements against everything retrieved; we check each statement only against the
text of the papers its own `[n]` markers cite, so a true claim pinned on the wrong paper fails.

The deterministic scorer (no model calls, same result every run) is the run-time check of
assistant/grounding.py: numbers, named terms and MiniLM similarity against the cited text. The
threshold is calibrated on the hand-labelled statements in
tests/data/faithfulness_labels.jsonl (see `calibrate`); tests/test_evals.py re-derives it and
reports the agreement with the labels.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from assistant.grounding import (  # noqa: F401 - the scorer lives in run-time code
    SIMILARITY_THRESHOLD,
    Check,
    CitedText,
    DeterministicScorer,
    named_terms,
    source_numbers,
    source_sentences,
    statement_numbers,
    strip_markers,
    term_in,
)
from assistant.similarity import EmbedFn  # noqa: F401
from assistant.text import LEADING_MARKERS, cited_numbers, sentences

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
