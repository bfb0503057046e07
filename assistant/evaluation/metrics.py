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
- headline (`misses` empty): an answerable question is answered correctly when it is not
  abstained, a gold paper is cited, the expected value (if any) is in the answer, every
  statement is supported by the deterministic scorer, the answer states the key, no
  statement is an echo of the question, and (a single-paper question) no paper outside gold
  and acceptable is cited; an abstain question when it abstains and cites nothing.
  Abstaining on an answerable question is a miss, never "no value".
- substantive: answerable, not abstained, and no statement that is an echo or a bare title.
- key recall: the answer, titles and markers removed, matches one of the key's regexes.
- echo rate: statements (pooled) whose content words beyond the titles all come from the
  question.
- extra citation rate: single-paper questions that cite a paper outside gold + acceptable.
- list recall: "which papers" questions: gold papers cited / min(|gold|, 8).
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


# A line's run-time verdicts that are not part of what it claims (mirrors assistant.answer).
_LINE_NOTE = re.compile(r"\s*\((?:unverified|off topic[^)]*)\)\s*$")
_LEAD = re.compile(r"^\s*(?:[-*\u2022]+|\d+[.)])\s+")
_TITLES_HEADER = re.compile(r"^\s*(?:relevant\s+)?(?:papers?|sources?)\s*:\s*", re.IGNORECASE)
# Citation markers as assistant.citations.MARKER accepts them ([1], [1, 3], [Source 2], [1-3]).
_MARKER = re.compile(r"\[\s*(?:sources?\s*)?\d{1,3}(?:\s*(?:[,;]|-|\u2013|and)\s*"
                     r"(?:sources?\s*)?\d{1,3})*\s*\]", re.IGNORECASE)


def strip_line_notes(text: str) -> str:
    """The answer without the run-time check's " (unverified)" notes at line ends."""
    return "\n".join(_LINE_NOTE.sub("", line) for line in text.splitlines())


def bare_line(line: str, titles: Sequence[str]) -> bool:
    """A line that says nothing besides citation markers and paper titles ("[1] [2]",
    "Title [1].", "Relevant papers: A [1]; B [2].")."""
    body = _TITLES_HEADER.sub("", _LEAD.sub("", _LINE_NOTE.sub("", _MARKER.sub(" ", line))))
    known = set(_keys(titles))
    parts = [normalize_title(p) for p in re.split(r";|\s[-\u2013]\s", body)]
    return all(not key or key in known for key in parts)


def substantive(answer: str, titles: Sequence[str], abstained: bool,
                answerable: bool) -> bool | None:
    """Answerable, answered, and every non-empty line says something besides titles/markers."""
    if not answerable:
        return None
    lines = [line for line in answer.splitlines() if line.strip()]
    return not abstained and bool(lines) and not any(bare_line(x, titles) for x in lines)


# Why a question misses the headline (fixed keys: the report always has every count).
MISS_REASONS = ("abstained", "no_gold_cited", "value_missing", "unfaithful", "bare",
                "no_key", "echo", "extra_citation", "answered_off_topic", "cited_when_abstaining",
                "error")


def headline_misses(*, answerable: bool, abstained: bool, cited: Sequence[str],
                    gold: Sequence[str], expected: Sequence[str], answer: str,
                    supported: Sequence[bool], substantive: bool | None,
                    key: bool | None = None, echoes: int = 0,
                    extra: bool | None = None) -> list[str]:
    """Reasons (MISS_REASONS) the answer misses the headline; [] means correct.

    `supported`: the deterministic scorer's verdict per statement; an answer with no
    statement at all is not faithful (it claims nothing that could be checked).
    """
    if not answerable:
        return ((["answered_off_topic"] if not abstained else [])
                + (["cited_when_abstaining"] if cited else []))
    if abstained:
        return ["abstained"]
    misses = []
    if not set(_keys(cited)) & set(_keys(gold)):
        misses.append("no_gold_cited")
    if expected and not any(value_in(answer, v) for v in expected):
        misses.append("value_missing")
    if not supported or not all(supported):
        misses.append("unfaithful")
    if not substantive:
        misses.append("bare")
    if key is False:
        misses.append("no_key")
    if echoes:
        misses.append("echo")
    if extra:
        misses.append("extra_citation")
    return misses


def title_ok(title: str, gold: Sequence[str], acceptable: Sequence[str] = ()) -> bool:
    """The cited paper is gold or acceptable."""
    return normalize_title(title) in set(_keys(gold)) | set(_keys(acceptable))


def mean_of(values: Iterable[float | bool | None]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return round(mean(present), 4) if present else None


# --------------------------------------------------------------------------- substance (issue 14)


def _remove_titles(text: str, titles: Sequence[str]) -> str:
    for title in sorted({t for t in titles if t}, key=len, reverse=True):
        text = re.sub(re.escape(title), " ", text, flags=re.IGNORECASE)
    return _MARKER.sub(" ", text)


def is_echo(statement: str, question: str, titles: Sequence[str] = ()) -> bool:
    """A statement that says nothing the question (and the cited titles) did not already say:
    every content word beyond the titles comes from the question ("Title studies the stability
    gap [1]" for "Which papers study the stability gap?"), or there is none. The run-time check
    (assistant/support.py) leaves such sentences out; this measures that it did."""
    from assistant.support import is_echo as echo

    return echo(_MARKER.sub(" ", statement), question, titles)


def states_key(answer: str, key: Sequence[str], titles: Sequence[str] = ()) -> bool | None:
    """Whether the answer, titles and markers removed, matches one of the key's regexes."""
    if not key:
        return None
    text = " ".join(_remove_titles(answer, titles).split())
    return any(re.search(pattern, text, re.IGNORECASE) for pattern in key)


def extra_citation(cited: Sequence[str], gold: Sequence[str], acceptable: Sequence[str],
                   single_paper: bool) -> bool | None:
    """A single-paper question that cites a paper outside gold + acceptable."""
    if not single_paper:
        return None
    ok = set(_keys(gold)) | set(_keys(acceptable))
    return any(key not in ok for key in _keys(cited))


LIST_CAP = 8  # an answer lists at most this many papers (the rest are reachable in the chat)


def list_recall(cited: Sequence[str], gold: Sequence[str], is_list: bool) -> float | None:
    """Gold papers cited / min(|gold|, LIST_CAP), for "which papers" questions."""
    if not is_list or not gold:
        return None
    gold_keys = set(_keys(gold))
    return len(gold_keys & set(_keys(cited))) / min(len(gold_keys), LIST_CAP)
