"""The answer's wording: the abstention, the list's lead, the evidence block.

Presentation code (the chat, the CLI) and the core share these, so a shown preview and the
final `Answer.text` read the same; nothing here touches the store or the model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .text import title_head
from .types import Hit, Related, Source

# What the user reads when the collection does not cover a question (the first line of an
# abstention; the closest papers follow it, not cited as support).
SENTINEL = "The collection does not contain papers that answer this question."
CLOSEST_HEADER = "Closest in the collection, not cited:"
EVIDENCE_HEADER = "Evidence:"
RELATED_HEADER = "Related, not cited:"
UNVERIFIED = " (unverified)"  # marks a shown sentence the check does not support


def is_abstention(text: str) -> bool:
    norm = lambda s: re.sub(r"\W+", " ", s).strip().lower()  # noqa: E731
    return norm(text).startswith(norm(SENTINEL))


def abstention_text(closest: Sequence[Hit], missing: Sequence[str] = (),
                    quotes: Sequence[Source] = ()) -> str:
    """The sentinel, what no paper has, then the closest papers: offered, not cited, each with
    its sentence nearest the question when `quotes` has it, so that the reader can judge. (A
    paraphrase the decision abstains on often has its paper among these: 10 of dev's 25
    paraphrases abstain, and for 6 of them the paper is one of the three.)"""
    lines = [SENTINEL]
    if missing:
        words = ", ".join(f'"{w}"' for w in missing[:3])
        lines[0] += f" None of the closest papers mentions {words}."
    said = {q.paper_id: q.text for q in quotes if q.text}
    if closest:
        lines += [CLOSEST_HEADER] + [f'- {h.title}: "{readable(said[h.paper_id])}"' if h.paper_id in said
                                     else f"- {h.title}" for h in closest]
    return "\n".join(lines)


def _label(title: str, year: int | None) -> str:
    return f"{title} ({year})" if year else title


def evidence_lines(sources: Sequence[Source]) -> list[str]:
    """`[n] Title (year): "quote"`, a paper a line."""
    return [f'[{s.n}] {_label(s.title, s.year)}: "{readable(s.text)}"' for s in sources]


_TEX_ESCAPE = re.compile(r"\\([%&_#$])")
_TIE = re.compile(r"(?<=\w)~(?=[(\[])")


def readable(quote: str) -> str:
    """A quote as a reader wants it: the LaTeX escapes some abstracts keep undone ("5.13\\%" ->
    "5.13%", "approach~(CoTTA)" -> "approach (CoTTA)"; 29 in the bundled collection). Only what
    is shown: the model and the check read the abstract's own text."""
    return _TIE.sub(" ", _TEX_ESCAPE.sub(r"\1", quote))


def evidence_text(sources: Sequence[Source], related: Sequence[Related], more: int,
                  left_out: int) -> str:
    """The evidence paper by paper, then the uncited related papers and the counts."""
    lines = [EVIDENCE_HEADER, *evidence_lines(sources)]
    if related:
        lines.append(f"{RELATED_HEADER} " + "; ".join(_label(r.title, r.year) for r in related))
    if more:
        lines.append(f"{more_phrase(more)} (/more in the chat).")
    if left_out:
        lines.append(left_out_line(left_out))
    return "\n".join(lines)


def more_phrase(n: int) -> str:
    """"3 more papers answer this", "1 more paper answers this"."""
    return f"{n} more paper{'s' if n != 1 else ''} answer{'' if n != 1 else 's'} this"


def left_out_line(n: int) -> str:
    return (f"{n} sentence{'s' if n != 1 else ''} of the model's answer left out: not found in "
            "the quotes, or only restating the question or an earlier sentence.")


def lead_text(sources: Sequence[Source], more: Sequence[Source]) -> str:
    """A list's first sentence, written without the model: how many papers answer and which,
    each with its marker ("3 papers in the collection answer this: DiffBIR [1], DiffIR [2] and
    PriorGrad [3]."). The model's sentences then say what they found."""
    if len(sources) < 2:
        return ""
    total = len(sources) + len(more)
    names = [f"{paper_label(s)} [{s.n}]" for s in sources]
    listed = ", ".join(names[:-1]) + " and " + names[-1]
    shown = f" ({len(sources)} below)" if more else ""
    return f"{total} papers in the collection answer this{shown}: {listed}."


LABEL_WORDS = 6  # a long title is named by its first words in the list's lead


def paper_label(source: Source) -> str:
    """How the lead names a paper: its short name ("CoTTA"), else its title's head before a
    colon ("DiffBIR"), else its first LABEL_WORDS words."""
    if source.name:
        return source.name
    title = " ".join(source.title.split())
    words = title.split()
    return title_head(title) or (
        title if len(words) <= LABEL_WORDS + 2 else " ".join(words[:LABEL_WORDS]) + " …")


def fallback_lead(sources: Sequence[Source], unsaid: Sequence[str] = ()) -> str:
    """The opening when the model wrote nothing the check supports: which paper answers (its
    quote, below, says what it found).

    `unsaid`: the question's words the model could only pin on the paper, which its abstract
    lacks. The paper may answer in other words (a paraphrase of it lacks them too) or not at
    all (dev para-23, "Can deaf people's hand gestures be rendered as ordinary written
    prose?", got a paper on audio tests for blind students): the reader is told, to judge.
    """
    if not unsaid:
        return f"{sources[0].title} answers this; its abstract says:"
    if not any(len(w) >= 6 for w in unsaid):  # "teach", "move": naming them would tell nothing
        return f"{sources[0].title} is the closest paper, and may answer this in other words; it says:"
    words = [f'"{w}"' for w in unsaid[:3]]
    listed = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
    return (f"{sources[0].title} is the closest paper, but its abstract does not mention "
            f"{listed}; it says:")


_WHO = re.compile(r"\b(who (wrote|authored|are|were|is)\b.{0,30}\b(authors?|paper|it)|who (wrote|authored)|"
                  r"authors? of|author list|written by|whose paper)\b", re.IGNORECASE)
_WHEN = re.compile(r"\b(when (was|were|did)\b.{0,40}\b(published|released|written|come out|appear)|"
                   r"what year|which year|year of publication)\b", re.IGNORECASE)


def metadata_lead(question: str, source: Source, authors: Sequence[str], year: int | None) -> str | None:
    """Who wrote a paper, or when: answered from its record, not by the model, which reads
    only the quote (an abstract names no authors). None when the question asks neither.

    >>> metadata_lead("Who wrote TabPFN?", source, ("N. Hollmann", "F. Hutter"), 2022)  # doctest: +SKIP
    'TabPFN: A Transformer ... is by N. Hollmann and F. Hutter (2022) [1].'
    """
    who, when = bool(_WHO.search(question)), bool(_WHEN.search(question))
    if not who and not when:
        return None
    title = source.title
    if who and authors:
        names = list(authors[:3]) + (["others"] if len(authors) > 3 else [])
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        return f"{title} is by {listed}" + (f" ({year})" if year else "") + f" [{source.n}]."
    if when and year:
        return f"{title} is from {year} [{source.n}]."
    missing = "author names" if who else "publication year"
    return (f"The collection has no {missing} for {title} [{source.n}]: its record holds the "
            "title and abstract only; the abstract says:")
