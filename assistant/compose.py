"""One cited line per source: the answer's structure, so that a 1.5B model cannot be mute.

Asked for one answer over five abstracts at once, the embedded model replied with bare markers
("[1] [2]") or titles in about half of the questions, and every source it was shown cost ~1.4 s
of prompt before the first word. Here each source gets its own small request instead:

    system prompt (fixed: ~150 tokens, cached by the server after the first request)
    + the source's best sentences (~150 tokens: read anew, ~2 s on 2 cores)
    + "Question: ..." (last: the 1.5B model then answers what is asked; with the question
      before the source it described the paper instead: it stated the asked value in 11 of 17
      dev fact questions, against 13 of 17 this way, and answered 6 of 9 dev follow-ups
      against 8; re-reading ~25 question tokens per line costs ~0.3 s)

and the model writes one sentence about that source alone, or "NOT RELEVANT". On llama.cpp a
grammar forces exactly one of those two shapes, so a reply is never a bare title or marker; the
line's citation is known by construction (the source it was written from), and the claim check
compares the sentence with that source's text only.

Worked example (source 1 is the stability-gap paper):

    model:   "This paper proposes three strategies that mitigate the stability gap ..."
    shown:   "Efficient Continual Pre-training by Mitigating the Stability Gap proposes three
              strategies that mitigate the stability gap ... [1]"
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import prompts
from .types import Source

NOT_RELEVANT = "NOT RELEVANT"
LEAD = "This paper "
# Exactly "NOT RELEVANT", or one line that starts "This paper " (the title replaces those words).
GRAMMAR = f'root ::= "{NOT_RELEVANT}" | "{LEAD}" [^\\n]+'
LINE_TOKENS = 90  # one sentence of 20-60 words; a longer one is cut at its last full stop
# Free-form servers (no grammar) open the same sentence in other ways.
_OTHER_LEADS = re.compile(
    r"^\s*(?:[-*]\s*)?(?:\[\d+\]\s*)?(?:(?:this|the) (?:paper|work|study|abstract|article)|"
    r"the authors|it)\s+", re.IGNORECASE
)
_NOT_RELEVANT = re.compile(r"^\W*not\s+relevant\b", re.IGNORECASE)
# A link in a line can only come from an abstract, which is untrusted (an injected abstract asks
# for "download the fix at http://..."); a paper's own page is one `/open` away, so none is shown.
_LINK = re.compile(r"\(?\b(?:https?://|www\.)\S+", re.IGNORECASE)
LINK_REMOVED = "(link removed)"


def messages(question: str, source: Source) -> list[dict[str, str]]:
    """The request for one source's line: fixed system prompt, then question, then the source."""
    user = prompts.render("answer", question=question, text=source.text)
    return [{"role": "system", "content": prompts.render("system", not_relevant=NOT_RELEVANT)},
            {"role": "user", "content": user}]


@dataclass
class LineStream:
    """Turns the model's deltas for one source into the text shown, as they arrive.

    The first characters decide the line's shape, so they are held back until known: "NOT
    RELEVANT" shows nothing; "This paper ..." shows the title in place of "This paper".
    """

    title: str
    held: str = ""
    decided: bool = False
    relevant: bool = True
    raw: str = ""

    def feed(self, delta: str) -> str:
        self.raw += delta
        if self.decided:
            return delta if self.relevant else ""
        self.held += delta
        probe = self.held.lstrip()
        if _NOT_RELEVANT.match(probe) or (len(probe) < len(NOT_RELEVANT)
                                          and NOT_RELEVANT.startswith(probe.upper())):
            if _NOT_RELEVANT.match(probe):
                self.decided, self.relevant = True, False
            return ""
        if len(probe) < len(LEAD) and LEAD.lower().startswith(probe.lower()):
            return ""  # "This pa": wait for the rest
        self.decided = True
        return self._open(probe)

    def _open(self, text: str) -> str:
        match = _OTHER_LEADS.match(text)
        rest = text[match.end():] if match else text
        return f"{self.title} {rest}" if match else f"{self.title}: {rest}"

    def close(self) -> str:
        """What was still held back when the model stopped (a reply shorter than the lead)."""
        if self.decided or not self.held.strip():
            return ""
        self.decided = True
        if _NOT_RELEVANT.match(self.held) or NOT_RELEVANT.startswith(self.held.strip().upper()):
            self.relevant = False
            return ""
        return self._open(self.held.lstrip())


class LinkFilter:
    """Streamed text with links replaced, as `line_text` replaces them: a word is held back
    until the whitespace after it shows it whole."""

    def __init__(self) -> None:
        self.word = ""

    def feed(self, text: str) -> str:
        text = self.word + text
        cut = max(text.rfind(" "), text.rfind("\n"))
        done, self.word = text[: cut + 1], text[cut + 1:]
        return _LINK.sub(LINK_REMOVED, done)

    def close(self) -> str:
        word, self.word = self.word, ""
        return _LINK.sub(LINK_REMOVED, word)


def line_text(title: str, raw: str) -> str | None:
    """The whole line for a finished reply (None: not relevant), cut to complete sentences."""
    stream = LineStream(title)
    text = stream.feed(raw) + stream.close()
    if not stream.relevant:
        return None
    text = " ".join(_LINK.sub(LINK_REMOVED, text).split())
    if not re.search(r"[.!?]$", text):
        cut = max(text.rfind(". "), text.rfind("! "), text.rfind("? "))
        text = text[: cut + 1] if cut > len(title) else text
    body = text[len(title):].strip(" :")
    return text if len(re.findall(r"[A-Za-z]{3,}", body)) >= 3 else None
