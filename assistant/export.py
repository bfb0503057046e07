"""Answers out: Markdown with a numbered reference list, and BibTeX for the cited papers.

What a researcher does next with an answer is paste it into notes or a paper. Both formats come
from the papers' own records (`Answer.papers`, read from the store when the answer was built):

    markdown(answer)   "## question", the direct answer with its [n] markers, the evidence as
                       "- [1] *Title* (2024): "quote"", then "### References"
                       1. Authors (year). *Title*. arXiv:2406.14833 / doi:... <link>
    bibtex(papers)     the original entry for a paper read from a .bib (its citation key kept);
                       else a generated @misc (arXiv eprint) or @article (DOI), keyed
                       <first author's surname><year><first title word>

The Markdown renders on GitHub and in Obsidian; the BibTeX round-trips through bibtexparser.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from .answer_text import EVIDENCE_HEADER, RELATED_HEADER, left_out_line, more_phrase, readable
from .text import clean
from .types import Answer, Paper

MAX_AUTHORS = 6  # then "et al."
# Words a citation key skips to reach the title's first meaningful one (as Zotero and JabRef do)
_KEY_SKIP = frozenset("""a an the on of for to in at by with and or from how what why when which
    is are do does can towards toward""".split())


def markdown(answer: Answer) -> str:
    """The answer as Markdown: the question, the direct answer with [n], the evidence as a list
    (one paper an item: a plain text's consecutive lines would render as one paragraph), the
    related and further papers, then the numbered references."""
    lines = [f"## {_one_line(answer.question)}", ""]
    if answer.abstained or not answer.sources:
        return "\n".join(lines + [clean(answer.text.strip())]).rstrip() + "\n"
    direct = answer.text.split(EVIDENCE_HEADER, 1)[0].strip()
    lines += [clean(direct), "", f"**{EVIDENCE_HEADER.rstrip(':')}**", ""]
    lines += [f"- [{s.n}] *{_md_escape(clean(s.title))}*{f' ({s.year})' if s.year else ''}: "
              f"\"{_md_escape(clean(readable(s.text)))}\"" for s in answer.sources]
    lines += _notes(answer)
    papers = {p.paper_id: p for p in answer.papers}
    lines += ["", "### References", ""]
    for source in answer.sources:
        paper = papers.get(source.paper_id) or Paper(source.paper_id, source.title, "",
                                                     year=source.year)
        lines.append(f"{source.n}. {reference(paper)}")
    return "\n".join(lines).rstrip() + "\n"


def _notes(answer: Answer) -> list[str]:
    """The uncited papers and the counts, each its own paragraph."""
    label = lambda t, y: _md_escape(clean(t)) + (f" ({y})" if y else "")  # noqa: E731
    notes = []
    if answer.related:
        notes.append(f"{RELATED_HEADER} " + "; ".join(label(r.title, r.year)
                                                       for r in answer.related))
    if answer.more:
        notes.append(f"{more_phrase(len(answer.more))}: "
                     + "; ".join(label(s.title, s.year) for s in answer.more))
    if answer.left_out:
        notes.append(left_out_line(len(answer.left_out)))
    return [x for note in notes for x in ("", note)]


def reference(paper: Paper) -> str:
    """`Authors (year). *Title*. arXiv:id. link` (parts the record lacks are left out)."""
    parts = []
    if paper.authors:
        names = list(paper.authors[:MAX_AUTHORS])
        parts.append(", ".join(names) + (" et al." if len(paper.authors) > MAX_AUTHORS else ""))
    head = " ".join(parts + ([f"({paper.year})."] if paper.year else []))
    head = head if head.endswith(".") or not head else head + "."
    title = f"*{_md_escape(clean(paper.title))}*."
    ident = []
    if paper.arxiv_id:
        ident.append(f"arXiv:{paper.arxiv_id}")
    if paper.doi:
        ident.append(f"doi:{paper.doi}")
    link = _link(paper)
    tail = " ".join(ident + ([f"<{link}>"] if link else []))
    return " ".join(x for x in (head, title, tail) if x)


def _link(paper: Paper) -> str | None:
    if paper.arxiv_id:
        return f"https://arxiv.org/abs/{paper.arxiv_id}"
    if paper.doi:
        return f"https://doi.org/{paper.doi}"
    return paper.url if paper.url and paper.url.startswith(("https://", "http://")) else None


def bibtex(papers: Sequence[Paper]) -> str:
    """BibTeX entries, one per paper, in order; keys made unique ("smith2024a", "smith2024b")."""
    entries, used = [], set()
    for paper in papers:
        if paper.bibtex and paper.citekey:
            entries.append(clean(paper.bibtex).strip())  # untrusted: no escape reaches a terminal
            used.add(paper.citekey)
            continue
        key = _unique(citekey(paper), used)
        used.add(key)
        entries.append(_generated(paper, key))
    return "\n\n".join(entries) + ("\n" if entries else "")


def citekey(paper: Paper) -> str:
    """<first author's surname><year><first title word>, ASCII letters and digits only."""
    surname = paper.authors[0].split(",")[0].split()[-1] if paper.authors else "anon"
    word = next((w for w in re.findall(r"[A-Za-z]+", paper.title)
                 if w.lower() not in _KEY_SKIP), "paper")
    return _ascii(f"{surname}{paper.year or ''}{word}").lower() or "paper"


def _unique(key: str, used: set[str]) -> str:
    if key not in used:
        return key
    for suffix in "abcdefghijklmnopqrstuvwxyz":
        if key + suffix not in used:
            return key + suffix
    return f"{key}{len(used)}"


def _generated(paper: Paper, key: str) -> str:
    kind = "article" if paper.doi and not paper.arxiv_id else "misc"
    fields = [("title", "{" + _bib_escape(paper.title) + "}")]
    if paper.authors:
        fields.append(("author", _bib_escape(" and ".join(paper.authors))))
    if paper.year:
        fields.append(("year", str(paper.year)))
    if paper.arxiv_id:
        fields += [("eprint", paper.arxiv_id), ("archivePrefix", "arXiv")]
    if paper.doi:
        fields.append(("doi", paper.doi))
    link = _link(paper)
    if link:
        fields.append(("url", link))
    body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields)
    return f"@{kind}{{{key},\n{body}\n}}"


def _bib_escape(text: str) -> str:
    """Plain text as a braced BibTeX value: LaTeX specials escaped, braces balanced."""
    text = clean(" ".join(text.split()))
    text = text.replace("\\", "\\textbackslash{}")
    for ch in "&%$#_":
        text = text.replace(ch, "\\" + ch)
    return text.replace("{", "\\{").replace("}", "\\}").replace("\\textbackslash\\{\\}",
                                                                 "\\textbackslash{}")


def _ascii(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in text if ch.isascii() and ch.isalnum())


def _md_escape(text: str) -> str:
    return re.sub(r"([*_`\[\]<>])", r"\\\1", text)


def _one_line(text: str) -> str:
    return " ".join(clean(text).split())
