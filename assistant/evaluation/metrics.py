"""Per-question scores and their aggregation: retrieval, citations, facts, abstention.

All functions are pure: titles in, numbers out. Papers are compared by normalized title
(casefolded letters and digits), the corpus reader's merge key.

Definitions (k-capped where a perfect system could not reach 1 otherwise):
- recall@k      = |gold in top k| / min(|gold|, k)            (paper level, answerable only)
- MRR           = 1 / rank of the first gold paper in the top 10, else 0
- citation precision = |cited that are gold or acceptable| / |cited|  (questions that cite)
- citation recall    = |gold cited| / min(|gold|, sources shown)     (answerable questions)
- fact accuracy      = an expected value occurs in the answer AND a gold paper is cited
- abstention accuracy: abstain questions answered with the sentinel and no citations;
  answerable questions not abstained.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from statistics import mean

from assistant.text import normalize_title


def _keys(titles: Iterable[str]) -> list[str]:
    out: list[str] = []
    for t in titles:
        key = normalize_title(t)
        if key not in out:
            out.append(key)
    return out


def recall_at_k(ranked: Sequence[str], gold: Sequence[str], k: int) -> float | None:
    gold_keys = set(_keys(gold))
    if not gold_keys:
        return None
    top = set(_keys(ranked)[:k])
    return len(gold_keys & top) / min(len(gold_keys), k)


def reciprocal_rank(ranked: Sequence[str], gold: Sequence[str], k: int = 10) -> float | None:
    gold_keys = set(_keys(gold))
    if not gold_keys:
        return None
    for rank, key in enumerate(_keys(ranked)[:k], start=1):
        if key in gold_keys:
            return 1.0 / rank
    return 0.0


def citation_precision(cited: Sequence[str], gold: Sequence[str],
                       acceptable: Sequence[str] = ()) -> float | None:
    cited_keys = _keys(cited)
    if not cited_keys:
        return None
    ok = set(_keys(gold)) | set(_keys(acceptable))
    return sum(key in ok for key in cited_keys) / len(cited_keys)


def citation_recall(cited: Sequence[str], gold: Sequence[str], shown: int) -> float | None:
    gold_keys = set(_keys(gold))
    if not gold_keys:
        return None
    cap = max(1, min(len(gold_keys), shown))
    return min(1.0, len(gold_keys & set(_keys(cited))) / cap)


def _norm_text(text: str) -> str:
    text = text.casefold().replace("\u00a0", " ").replace("\u2009", " ")
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # 9,200 -> 9200
    text = re.sub(r"(?<=\d) (?=\d{3}\b)", "", text)  # 5 700 -> 5700
    text = re.sub(r"(\d)\s*(%|x\b|×)", r"\1\2", text)  # "21 %" -> "21%"
    return re.sub(r"\s+", " ", text)


def value_in(text: str, value: str) -> bool:
    """Whether `value` occurs in `text`: case, spacing and thousands separators ignored; a
    number must not be part of a longer number ("48" is not in "148" or "4.8")."""
    t, v = _norm_text(text), _norm_text(value).strip()
    if not v:
        return False
    pattern = re.escape(v)
    if v[0].isdigit():
        pattern = r"(?<![\d.])" + pattern
    if v[-1].isdigit():
        pattern += r"(?!\.?\d)"
    elif v[-1].isalnum():
        pattern += r"(?![a-z0-9])"
    return re.search(pattern, t) is not None


def fact_correct(answer: str, expected: Sequence[str], cited: Sequence[str],
                 gold: Sequence[str]) -> bool | None:
    if not expected:
        return None
    cited_gold = bool(set(_keys(cited)) & set(_keys(gold)))
    return cited_gold and any(value_in(answer, v) for v in expected)


def abstention_correct(should_abstain: bool, abstained: bool, n_citations: int) -> bool:
    if should_abstain:
        return abstained and n_citations == 0
    return not abstained


def mean_of(values: Iterable[float | bool | None]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return round(mean(present), 4) if present else None
