"""Plain-text helpers shared by the context builder, the citation parser, the evals and the reader.

One home each for: splitting prose into sentences, the `[n]` citation-marker pattern, and the
title key papers are merged and matched on.
"""

from __future__ import annotations

import re
import unicodedata

# --------------------------------------------------------------------------- sentences

# A sentence ends at . ! ? (optionally followed by closing quotes/brackets) and whitespace, when
# the next sentence starts like one: a capital, a digit, an opening bracket/quote or a marker.
# On the 250 bundled abstracts this splits exactly where the context builder's old rule did.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[A-Z0-9(\[\"'])")
# Abbreviations that end in a dot but not a sentence ("e.g. BERT", "et al. Their").
_ABBREV = re.compile(r"(?:\b(?:e\.g|i\.e|et al|etc|vs|cf|Fig|Eq|approx|resp|No)\.)$", re.I)
# A list number on its own ("1." of "1. First step") starts an item; it does not end a sentence.
_LIST_NUMBER = re.compile(r"\(?(?:\d{1,2}|[ivx]{1,4})[.)]", re.I)


def sentences(text: str) -> list[str]:
    """Sentences of a paragraph, stripped, in order; nothing is dropped or rewritten."""
    merged: list[str] = []
    for part in _SENTENCE_END.split(text):
        part = part.strip()
        if not part:
            continue
        if merged and (_ABBREV.search(merged[-1]) or _LIST_NUMBER.fullmatch(merged[-1])):
            merged[-1] = f"{merged[-1]} {part}"
            continue
        merged.append(part)
    return merged


# --------------------------------------------------------------------------- citation markers

# `[1]`, `[1, 3]`, `[1; 3]`, `[1-3]`, `[1 and 2]`, `[Source 2]`; four digits (`[2023]`) are a
# year, not a source. Group 1 is the marker's body, read by `numbers_in`.
MARKER = re.compile(
    r"\[\s*(?:sources?\s*)?(\d{1,3}(?:\s*(?:[,;]|-|–|and)\s*(?:sources?\s*)?\d{1,3})*)\s*\]",
    re.IGNORECASE,
)
# Markers at the start of a text: "[1] A claim." or "[1], [2] A claim."
LEADING_MARKERS = re.compile(r"^\s*((?:" + MARKER.pattern + r"\s*[,;]?\s*)+)", re.IGNORECASE)


def markers_last(sentence: str) -> str:
    """Markers that lead a sentence go: "[1] From Fake to Real found X [1]." reads "From Fake
    to Real found X [1]."; a sentence whose only markers lead gets them at its end ("[2] X
    found Y." reads "X found Y [2].")."""
    lead = LEADING_MARKERS.match(sentence)
    if not lead or not sentence[lead.end():].strip():
        return sentence
    rest = sentence[lead.end():]
    if MARKER.search(rest):
        return rest
    body = rest.rstrip()
    end = body[-1] if body[-1] in ".!?" else ""
    return f"{body[:len(body) - len(end)]} {lead.group(1).strip().rstrip(',;').strip()}{end or '.'}"


_NUM = re.compile(r"\d+")
_RANGE = re.compile(r"(\d+)\s*[-–]\s*(\d+)")
_LIST_SEP = re.compile(r"\s*(?:[,;]|and)\s*")


def numbers_in(marker_body: str) -> list[int]:
    """'1, 3' -> [1, 3]; '2-4' -> [2, 3, 4] (ranges of at most 10)."""
    out: list[int] = []
    for part in _LIST_SEP.split(marker_body):
        if m := _RANGE.fullmatch(part.strip()):
            lo, hi = int(m.group(1)), int(m.group(2))
            out += list(range(lo, hi + 1)) if 0 <= hi - lo < 10 else [lo, hi]
        else:
            out += [int(n) for n in _NUM.findall(part)]
    return out


def cited_numbers(text: str) -> tuple[int, ...]:
    """The distinct numbers the markers of `text` cite, in order of first appearance."""
    out: dict[int, None] = {}
    for match in MARKER.finditer(text):
        out.update(dict.fromkeys(numbers_in(match.group(1))))
    return tuple(out)


# --------------------------------------------------------------------------- titles


def normalize_title(title: str) -> str:
    """Merge key of a title: casefolded letters and digits only, accents dropped.

    Dropping every non-alphanumeric makes "Pre-training", "Pretraining" and "pre training" one
    paper, and page-dump titles (plain Unicode) meet arXiv titles (LaTeX accents cleaned).
    """
    text = unicodedata.normalize("NFKD", title).casefold()
    return "".join(ch for ch in text if ch.isalnum())


# --------------------------------------------------------------------------- terminal safety

# Abstracts, titles and model output are untrusted: an ESC sequence in them could move the
# cursor, rewrite earlier lines, retitle the window or write the clipboard (OSC 52). Escape
# sequences are removed whole (a stray "[2J" left behind would be noise); a sequence that is
# not terminated runs to the end of the text, as a terminal would swallow it.
_STRING_INTRODUCERS = r"\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]"  # OSC, DCS, SOS, PM, APC
_ESCAPE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"  # CSI: parameters, intermediates, final byte
    rf"|(?:{_STRING_INTRODUCERS}).*?(?:\x07|\x1b\\|\x9c|\Z)"  # strings end at BEL or ST
    r"|\x1b[ -/]*[0-~]?",  # any other escape (charset, keypad, ...)
    re.DOTALL,
)
_COMPLETE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    rf"|(?:{_STRING_INTRODUCERS}).*?(?:\x07|\x1b\\|\x9c)"
    r"|\x1b(?![\[\]PX^_])[ -/]*[0-~]",  # "\x1b[" alone is a CSI still arriving
    re.DOTALL,
)
# C0 controls but newline and tab, DEL, and the C1 range.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_C1 = re.compile(r"[\x7f-\x9f]")


def valid_text(text: str) -> str:
    """`text` as valid Unicode: lone surrogates -> U+FFFD.

    They arrive from bytes that are not UTF-8 on the command line (Python keeps each as a
    surrogate escape, "\\udcff") or from a JSON escape ("\\ud800"); the tokenizers, SQLite and
    the terminal all refuse them. Valid text is returned as it is, at the cost of one check.
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace") if _escapes_only(
            text) else text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _escapes_only(text: str) -> bool:
    """Whether every surrogate is one of Python's escapes of a non-UTF-8 byte (U+DC80-U+DCFF)."""
    return all(not 0xD800 <= ord(ch) <= 0xDFFF or 0xDC80 <= ord(ch) <= 0xDCFF for ch in text)


def clean(text: str) -> str:
    """`text` safe to print on a terminal: escape sequences and control characters removed."""
    if not text or not (_CONTROL.search(text)):
        return text
    return _CONTROL.sub("", _ESCAPE.sub("", text))


def json_line(value) -> str:
    """`value` as one line of JSON safe for a terminal: non-ASCII text kept, DEL and the C1
    controls escaped like the C0 ones json already escapes (U+009B is a CSI to some terminals)."""
    import json

    text = json.dumps(value, ensure_ascii=False)
    return _C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class StreamCleaner:
    """`clean` for text arriving in pieces: a sequence split across pieces is held back until
    it is complete (then dropped), so the pieces fed out join to `clean(whole text)`."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, piece: str) -> str:
        text = self._held + piece
        self._held = ""
        last = None
        for last in _ESCAPE.finditer(text):
            pass
        if last is not None and last.end() == len(text) and not _COMPLETE.fullmatch(last.group()):
            text, self._held = text[: last.start()], text[last.start():]
        return clean(text)

    def finish(self) -> str:
        """What is still held: an unterminated sequence, dropped as `clean` would."""
        held, self._held = self._held, ""
        return clean(held)


def title_head(title: str, most_words: int = 4) -> str:
    """A title's head before its colon when it is a name ("DiffBIR" of "DiffBIR: Towards Blind
    Image Restoration ..."; at most `most_words` words), else ""."""
    head = title.split(":", 1)[0].strip()
    return head if ":" in title and len(head.split()) <= most_words else ""


def edit_distance(a: str, b: str, limit: int) -> int:
    """Damerau-Levenshtein (optimal string alignment) distance, giving up above `limit`."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]
