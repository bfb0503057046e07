"""The LLM judge, in the RAGAS manner: statements first, then a verdict per statement.

Two calls per answered question, both recorded with the answer's cassette:
1. `prompts/judge_statements.txt`: the model breaks the answer into standalone statements,
   each keeping the `[n]` markers of the sentence it came from (skipped when the answer is
   already one cited claim per line, as the assistant's answers are: then each line is one
   statement, and only the verdict call is made);
2. `prompts/judge_verdict.txt`: for each statement, yes/no against the sources that the
   statement cites (only those are shown to it, each statement naming its own).

Unlike RAGAS, a statement is never judged against everything retrieved. Statements that cite
nothing are unsupported without asking; a verdict the judge fails to give counts as "no".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from assistant import prompts

from .faithfulness import CitedText, Statement, citation_numbers, strip_markers
from .questions import key_terms as key_terms_of

STATEMENTS_MAX_TOKENS = 320
VERDICT_MAX_TOKENS = 160
MAX_STATEMENTS = 12

_ITEM = re.compile(r"^\s*(?:[-*\u2022]+|\d+[.):])\s*(.+)$")
_VERDICT = re.compile(
    r"^\s*(?:statement\s*)?(\d+)\s*[:.)\-]\s*\**\s*(yes|no|supported|unsupported|true|false)\b",
    re.IGNORECASE | re.MULTILINE,
)


@dataclass(frozen=True)
class JudgeResult:
    statements: tuple[Statement, ...]
    verdicts: tuple[bool, ...]  # one per statement
    unparsed: int  # statements the judge gave no readable verdict for (counted as "no")
    raw_statements: str = ""
    raw_verdicts: str = ""

    @property
    def score(self) -> float | None:
        return sum(self.verdicts) / len(self.verdicts) if self.verdicts else None


def parse_statements(text: str, answer_statements: Sequence[Statement]) -> list[Statement]:
    """Statement lines of the judge's reply; lines without markers take the markers of the
    answer sentence they overlap most (by key terms)."""
    out: list[Statement] = []
    for line in text.splitlines():
        m = _ITEM.match(line)
        body = (m.group(1) if m else "").strip()
        if not body or body.lower().startswith(("statements", "answer:", "question:")):
            continue
        cites = citation_numbers(body)
        bare = strip_markers(body)
        if len(re.findall(r"[A-Za-z]{3,}", bare)) < 3:
            continue
        if not cites and answer_statements:
            terms = key_terms_of(bare)

            def overlap(st: Statement) -> float:
                other = key_terms_of(st.text)
                return len(terms & other) / (len(terms | other) or 1)

            cites = max(answer_statements, key=overlap).cites
        out.append(Statement(text=bare, cites=cites, inherited=not citation_numbers(body)))
        if len(out) >= MAX_STATEMENTS:
            break
    return out


def parse_verdicts(text: str, n: int) -> list[bool | None]:
    """`i: yes/no` lines -> a verdict per statement (None where the judge gave none)."""
    verdicts: list[bool | None] = [None] * n
    for m in _VERDICT.finditer(text):
        i = int(m.group(1)) - 1
        if 0 <= i < n and verdicts[i] is None:
            verdicts[i] = m.group(2).lower() in ("yes", "supported", "true")
    return verdicts


def verdict_grammar(n: int) -> str:
    """Exactly `n` lines "i: yes" / "i: no" (where the server takes grammars): the 1.5B judge
    otherwise explained each verdict, ~160 tokens (~12 s on 2 cores) for three statements."""
    lines = " ".join(f'"{i}: " verdict "\\n"' for i in range(1, n + 1))
    return f'root ::= {lines}\nverdict ::= "yes" | "no"'


def render_sources(cited: dict[int, CitedText]) -> str:
    return "\n\n".join(f"[{n}] {c.title}\n{c.text}" for n, c in sorted(cited.items()))


def render_statements(statements: Sequence[Statement]) -> str:
    return "\n".join(
        f"{i}. (cites {''.join(f'[{n}]' for n in s.cites)}) {s.text}"
        for i, s in enumerate(statements, start=1)
    )


class Judge:
    """Asks an `assistant.llm.LLM` for statements and verdicts (temperature from Settings)."""

    def __init__(self, llm) -> None:
        self.llm = llm

    def _ask(self, prompt: str, max_tokens: int, grammar: str | None = None) -> str:
        return self.llm.complete([{"role": "user", "content": prompt}], max_tokens=max_tokens,
                                 grammar=grammar).text

    def statements(self, question: str, answer: str,
                   fallback: Sequence[Statement]) -> tuple[list[Statement], str]:
        raw = self._ask(prompts.render("judge_statements", question=question, answer=answer),
                        STATEMENTS_MAX_TOKENS)
        parsed = parse_statements(raw, fallback)
        return (parsed or list(fallback)), raw

    def verdicts(self, statements: Sequence[Statement],
                 sources: dict[int, CitedText]) -> tuple[list[bool | None], str]:
        """Verdicts for statements that cite known sources; the others are False unasked."""
        known = [Statement(s.text, tuple(n for n in s.cites if n in sources), s.inherited)
                 for s in statements]
        asked = [i for i, s in enumerate(known) if s.cites]
        out: list[bool | None] = [False] * len(statements)
        if not asked:
            return out, ""
        shown = [known[i] for i in asked]
        cited = {n: sources[n] for s in shown for n in s.cites}
        raw = self._ask(prompts.render("judge_verdict", sources=render_sources(cited),
                                       statements=render_statements(shown)), VERDICT_MAX_TOKENS,
                        verdict_grammar(len(shown)))
        for i, verdict in zip(asked, parse_verdicts(raw, len(shown))):
            out[i] = verdict
        return out, raw

    def judge(self, question: str, answer: str, answer_statements: Sequence[Statement],
              sources: dict[int, CitedText], *, atomic: bool = False) -> JudgeResult:
        """`atomic`: the answer's statements are its lines already (no statements call)."""
        if atomic:
            statements, raw_s = list(answer_statements), ""
        else:
            statements, raw_s = self.statements(question, answer, answer_statements)
        verdicts, raw_v = self.verdicts(statements, sources)
        unparsed = sum(v is None for v in verdicts)
        return JudgeResult(tuple(statements), tuple(bool(v) for v in verdicts), unparsed, raw_s, raw_v)
