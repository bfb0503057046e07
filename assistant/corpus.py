"""Read papers (title + abstract) from page dumps, JSON Lines, CSV, the arXiv snapshot, and the
BibTeX and RIS files reference managers export (assistant/references.py).

Every reader is a generator over the lines of one file, so a multi-GB arXiv metadata snapshot
streams. `read_papers` merges everything in memory (small inputs, tests); `PaperStream` (ingest)
holds 16 bytes a record plus the records that may merge (see its docstring).
Bad records never stop a read: they become `Problem`s (`file:line: reason`) next to the good
papers, and `strict=True` turns any of them into one `CorpusError`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from assistant import identity
from assistant.errors import CorpusError
from assistant.identity import arxiv_id as _arxiv_id
from assistant.latex import clean_latex as _clean_latex
from assistant.lines import Unreadable, change, decoded_lines, stamp
from assistant.text import normalize_title, valid_text
from assistant.types import Paper, Problem

__all__ = [
    "PaperStream",
    "merge_papers",
    "ProblemLog",
    "ReadResult",
    "bundled_paths",
    "normalize_title",
    "paper_id_for",
    "read_papers",
]

BUNDLED_DIR = Path(__file__).parent / "data" / "corpus"

_FORMATS = {".txt": "pages", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv",
            ".bib": "bibtex", ".ris": "ris"}
_ACCEPTED = (".txt page dumps, .jsonl/.json/.ndjson, .csv, .bib, .ris (or .gz of these), "
             "or folders of them")
PathLike = str | os.PathLike[str]
_STRICT_SHOWN = 3  # problems quoted in the --strict error; the message must stay one line


@dataclass(frozen=True)
class ReadResult:
    """Merged papers, the records that could not be used, and how many good records were read."""

    papers: list[Paper]
    problems: list[Problem] = field(default_factory=list)
    records: int = 0  # good records before duplicates merged


# A paper as read, and the ids it is known by: "arxiv:X", "doi:Y", an explicit "id:Z" (or none).
_Record = tuple[Paper, tuple[str, ...]]


class _Bad(Exception):
    """A record this module cannot use; the message becomes the Problem's reason."""


# --------------------------------------------------------------------------- ids and titles


def _title_key(title: str) -> str:
    """Merge/hash key; a title with no letters or digits ("???") keys on itself, not on ""."""
    return normalize_title(title) or _WS.sub(" ", title).strip()


_NEW_ARXIV = re.compile(r"(\d{4})\.(\d{4,5})")  # 2305.12345: yymm.number, since April 2007


def paper_id_for(title: str, arxiv_id: str | None = None, doi: str | None = None) -> str:
    """Stable id: "arxiv:<id>" without version when known, else "doi:<doi>" when known, else
    "t:" + sha1 of the title key.

    All depend only on the input, so re-ingesting the same files gives the same ids.
    """
    if doi and not (arxiv_id and arxiv_id.strip()):
        return identity.doi_key(doi)
    if arxiv_id and arxiv_id.strip():
        bare = _arxiv_id(arxiv_id)
        if bare is None:  # not arXiv-shaped: still honour it, minus prefix and version
            bare = re.sub(r"^arxiv:|v\d+$", "", arxiv_id.strip(), flags=re.IGNORECASE)
        return f"arxiv:{bare}"
    digest = hashlib.sha1(_title_key(title).encode("utf-8")).hexdigest()
    return f"t:{digest[:16]}"


# --------------------------------------------------------------------------- text cleanup

_WS = re.compile(r"\s+")


def _squash(text: str) -> str:
    """Collapse newlines and runs of spaces (arXiv wraps titles and abstracts at ~80 columns)."""
    return _WS.sub(" ", text).strip()


def _scalars(values: list) -> list[str]:
    """The strings and numbers of a JSON list as text; nested lists and objects are not names
    (and printing one nested ~1,000 deep would recurse as deep)."""
    return [v if isinstance(v, str) else str(v) for v in values
            if isinstance(v, (str, int, float)) and not isinstance(v, bool)]


def _authors(value: Any) -> tuple[str, ...]:
    """Authors from a list or from "A, B and C"."""
    if isinstance(value, (list, tuple)):
        parts = _scalars(value)
    elif isinstance(value, str):
        parts = re.split(r",|;|\band\b", value)
    else:
        return ()
    return tuple(p for p in (_squash(p) for p in parts) if p)


def _categories(value: Any) -> tuple[str, ...]:
    """Categories from a list or a space/comma-separated string ("cs.CL cs.LG")."""
    if isinstance(value, (list, tuple)):
        parts = _scalars(value)
    elif isinstance(value, str):
        parts = re.split(r"[\s,]+", value)
    else:
        return ()
    return tuple(dict.fromkeys(p.strip() for p in parts if p.strip()))


def _year_in(value: Any) -> int | None:
    """First plausible year in an int or a date string ("2023-05-14", "Mon, 2 Apr 2007 ...")."""
    if isinstance(value, int) and not isinstance(value, bool) and 1900 <= value <= 2100:
        return value
    if isinstance(value, str):
        match = re.search(r"\b(19|20)\d{2}\b", value)
        return int(match.group(0)) if match else None
    return None


def _year(fields: dict[str, Any], arxiv: str | None) -> int | None:
    """Explicit year, else the new-style arXiv id (2305.x -> 2023), else the earliest date."""
    year = _year_in(fields.get("year"))
    if year is None and arxiv and (match := _NEW_ARXIV.fullmatch(arxiv)):
        year = 2000 + int(match.group(1)[:2])
    versions = fields.get("versions")
    if year is None and isinstance(versions, list) and versions and isinstance(versions[0], dict):
        year = _year_in(versions[0].get("created"))  # v1 date = first submission
    if year is None:
        year = _year_in(fields.get("update_date"))
    return year


def _text_field(fields: dict[str, Any], name: str, latex: bool) -> str:
    value = fields.get(name)
    if value is None:
        raise _Bad(f"missing {name}")
    if not isinstance(value, str):
        raise _Bad(f"{name} is not a string")
    text = _clean_latex(value) if latex else _squash(value)
    if not text:
        raise _Bad(f"empty {name}")
    return text


def _ident(fields: dict[str, Any], arxiv: str | None) -> tuple[str, ...]:
    """The record's own identity: its arXiv id, else an explicit `id` field, else none."""
    if arxiv:
        return (f"arxiv:{arxiv}",)
    value = fields.get("id")
    if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
        return (f"id:{str(value).strip()}",)
    return ()


def _paper_from_fields(fields: dict[str, Any], source: str) -> _Record:
    """(Paper, identity) from a JSON object or CSV row; raises _Bad when title/abstract are unusable."""
    # arXiv snapshot records carry LaTeX and hard-wrapped lines; other files are taken as is.
    latex = "update_date" in fields or "versions" in fields
    title = _text_field(fields, "title", latex)
    abstract = _text_field(fields, "abstract", latex)
    arxiv = _arxiv_id(fields.get("id")) or _arxiv_id(fields.get("url"))
    url = fields.get("url")
    url = url.strip() if isinstance(url, str) and url.strip() else None
    if url is None and arxiv:
        url = f"https://arxiv.org/abs/{arxiv}"
    authors = fields.get("authors")
    if latex and isinstance(authors, str):
        authors = _clean_latex(authors)  # "Andr\'e Martins" -> "Andre Martins"
    paper = Paper(
        paper_id=paper_id_for(title, arxiv),
        title=title,
        abstract=abstract,
        authors=_authors(authors),
        year=_year(fields, arxiv),
        url=url,
        categories=_categories(fields.get("categories")),
        sources=(source,),
        arxiv_id=arxiv,
    )
    return paper, _ident(fields, arxiv)


# --------------------------------------------------------------------------- line readers


def _read_jsonl(path: Path, display: str, problems: list[Problem]) -> Iterator[_Record]:
    """One JSON object a line: plain paper records or the arXiv metadata snapshot."""
    for number, text in decoded_lines(path, display, problems):
        if not text.strip():
            continue
        try:
            obj = _json_object(text)
        except _Bad as err:
            if number == 1 and text.lstrip().startswith("[") and str(err).startswith(_NOT_JSON):
                problems.append(Problem(display, 1, "a JSON array; write one JSON object a line"))
                return  # every later line would be "bad JSON" too
            problems.append(Problem(display, number, str(err)))
            continue
        try:
            yield _paper_from_fields(obj, path.name)
        except _Bad as err:
            problems.append(Problem(display, number, str(err)))


_NOT_JSON = "bad JSON ("
# Python refuses to turn more digits than this into an int (a guard against quadratic work).
_INT_DIGITS = sys.get_int_max_str_digits() or 10**9
_LONE_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")  # "\ud800" written in JSON


def _json_object(text: str) -> dict[str, Any]:
    """The JSON object on one line; raises _Bad saying why it is not one.

    Deep nesting (json recurses once a level) and numbers too long for an int are reasons, not
    crashes; a number of 5,000 digits becomes a float (inf), so a record keeps its paper when
    such a number sits in a field we do not use. A lone surrogate escape ("\\ud800") cannot be
    stored (it is not Unicode text): it becomes U+FFFD.
    """
    try:
        obj = json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as err:
        raise _Bad(f"{_NOT_JSON}{err.msg}, column {err.colno})") from None
    except RecursionError:
        raise _Bad("JSON nested too deeply (over ~1,000 levels)") from None
    if not isinstance(obj, dict):
        raise _Bad(f"not a JSON object (a {type(obj).__name__})")
    if "\\u" in text and _LONE_SURROGATE.search(text):
        obj = {k: _valid_unicode(v) for k, v in obj.items()}
    return obj


def _parse_int(digits: str) -> int | float:
    return int(digits) if len(digits) <= _INT_DIGITS else float(digits)


def _valid_unicode(value: Any, depth: int = 0) -> Any:
    """Lone surrogates -> U+FFFD in a string, or in the strings of a (shallow) list or dict."""
    if isinstance(value, str):
        return valid_text(value)
    if depth < 2 and isinstance(value, list):
        return [_valid_unicode(v, depth + 1) for v in value]
    if depth < 2 and isinstance(value, dict):
        return {k: _valid_unicode(v, depth + 1) for k, v in value.items()}
    return value


def _read_csv(path: Path, display: str, problems: list[Problem]) -> Iterator[_Record]:
    """CSV with a header naming at least `title` and `abstract` (quoted fields may span lines)."""
    span = [0, 0]  # first and last line of the record being parsed: quoted newlines span lines

    def feed() -> Iterator[str]:
        for number, text in decoded_lines(path, display, problems):
            span[0] = span[0] or number
            span[1] = number
            yield text + "\n"

    reader = csv.reader(feed())
    header: list[str] | None = None
    while True:
        span[0] = 0
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            problems.append(Problem(display, span[0], f"bad CSV ({err})"))
            continue
        if not row or not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [cell.strip().lower() for cell in row]
            reason = _header_problem(header)
            if reason:
                problems.append(Problem(display, span[0], reason))
                return
            continue
        try:
            yield _csv_paper(header, row, span, path.name)
        except _Bad as err:
            problems.append(Problem(display, span[0], str(err)))


def _csv_paper(header: list[str], row: list[str], span: list[int], source: str) -> _Record:
    """A CSV row as a paper. A quote opened by mistake (`"A study`) makes csv read every line up
    to the next quote as one field: the rows it swallowed would vanish into one title, so a
    record whose title runs over several lines, or whose columns do not match, names its lines."""
    spans = (f" (lines {span[0]}-{span[1]} read as one record: check the quotes on line {span[0]})"
             if span[1] > span[0] else "")
    if len(row) != len(header):
        raise _Bad(f"{len(row)} columns, header has {len(header)}{spans}")
    fields = dict(zip(header, row))
    if "\n" in fields["title"].strip():
        raise _Bad(f"title runs over several lines{spans}; check the quoting")
    return _paper_from_fields(fields, source)


_CSV_FIELDS = ("title", "abstract", "id", "authors", "year", "url", "categories")


def _header_problem(header: list[str]) -> str | None:
    """Why a CSV header cannot be used: a column missing, or one we read named twice."""
    if "title" not in header or "abstract" not in header:
        return "CSV header needs title and abstract columns"
    for name in _CSV_FIELDS:
        columns = [str(i + 1) for i, cell in enumerate(header) if cell == name]
        if len(columns) > 1:
            return (f'CSV header names "{name}" in {len(columns)} columns ({", ".join(columns)}): '
                    "keep one")
    return None


# Lines of the web page around the papers, not papers ("Mar 14" is the page's date).
_BOILERPLATE = {
    "get trending papers in your email inbox once a day!",
    "get trending papers in your email inbox!",
    "subscribe",
    "byak and the research community",
    "new",
}
_DATE = re.compile(r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]* \d{1,2}(, \d{4})?")
_GLUED_SUBSCRIBE = re.compile(r"^Subscribe(?=[A-Z0-9])")


def _is_abstract(line: str) -> bool:
    """Abstracts are long paragraphs; titles are short and rarely end a sentence."""
    return len(line) >= 200 or (len(line.split()) >= 20 and line.endswith((".", "!", "?")))


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _no_abstract(display: str, number: int, title: str) -> Problem:
    return Problem(display, number, f'title "{_short(title)}" has no abstract')


def _read_pages(path: Path, display: str, problems: list[Problem]) -> Iterator[_Record]:
    """Pair title and abstract lines of a saved papers page, skipping its boilerplate.

    Each title line is followed by its abstract line. Boilerplate, dates and blank lines are
    dropped first; then lines are classified (long paragraph = abstract, else title) rather
    than blindly alternated, so one missing abstract does not shift every later pair:

        line  text                        pairing
        1     Subscribe                   boilerplate, dropped
        2     Mar 14                      date, dropped
        3     Paper A                     title: A pending
        4     <A's abstract, 900 chars>   abstract: yields Paper A
        5     Paper B                     title: B pending
        6     Paper C                     title while B pending: Problem
                                          'f.txt:5: title "Paper B" has no abstract'; C pending
        7     <C's abstract>              abstract: yields Paper C

    A title still pending at the end of the file is reported the same way.
    """
    pending: tuple[int, str] | None = None
    seen_title = False
    for number, raw in decoded_lines(path, display, problems):
        line = _squash(raw)
        if not line or line.lower() in _BOILERPLATE or _DATE.fullmatch(line):
            continue
        if not _is_abstract(line):
            if pending is not None:
                problems.append(_no_abstract(display, *pending))
            if not seen_title:  # the page glues its "Subscribe" button to the first title
                line = _GLUED_SUBSCRIBE.sub("", line)
                seen_title = True
            pending = (number, line)
        elif pending is None:
            problems.append(Problem(display, number, f'abstract "{_short(line, 40)}" has no title'))
        else:
            title = pending[1]
            yield Paper(paper_id_for(title), title, line, sources=(path.name,)), ()
            pending = None
    if pending is not None:
        problems.append(_no_abstract(display, *pending))


def _read_bibtex(path: Path, display: str, problems: list[Problem]) -> Iterator[_Record]:
    from .references import read_bibtex  # imported here: bibtexparser only when a .bib is read

    return read_bibtex(path, display, problems)


def _read_ris(path: Path, display: str, problems: list[Problem]) -> Iterator[_Record]:
    from .references import read_ris

    return read_ris(path, display, problems)


_READERS = {"pages": _read_pages, "jsonl": _read_jsonl, "csv": _read_csv,
            "bibtex": _read_bibtex, "ris": _read_ris}


# --------------------------------------------------------------------------- paths and merging


def _format_of(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return _FORMATS.get(os.path.splitext(name)[1])


def _expand(paths: Iterable[PathLike]) -> list[tuple[Path, str, str]]:
    """(path, display name, format) of every file to read; raises before anything is read."""
    files: list[tuple[Path, str, str]] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            found = [(p, str(p), fmt) for p in inside if (fmt := _format_of(p))]
            if not found:
                raise CorpusError(f"{path}: folder holds no paper files; accepted: {_ACCEPTED}")
            files.extend(found)
        elif not path.exists():
            raise CorpusError(f"{path}: no such file or folder; accepted: {_ACCEPTED}")
        elif fmt := _format_of(path):
            files.append((path, str(given), fmt))
        else:
            raise CorpusError(f"{path}: unsupported format; accepted: {_ACCEPTED}")
    return files


def merge_papers(old: Paper, new: Paper, keep_id: bool = False) -> Paper:
    """The same paper read twice: keep the first text, fill gaps, union sources/categories.

    An arXiv id beats a DOI, which beats a title hash, whatever the reading order; with
    `keep_id` (a paper already in the store) the old id stays, so its chunks keep their ids.
    """
    paper_id = old.paper_id
    if not keep_id and identity.rank(new.paper_id) > identity.rank(paper_id):
        paper_id = new.paper_id
    return replace(
        old,
        paper_id=paper_id,
        authors=old.authors or new.authors,
        year=old.year if old.year is not None else new.year,
        url=old.url or new.url,
        categories=tuple(dict.fromkeys(old.categories + new.categories)),
        sources=tuple(dict.fromkeys(old.sources + new.sources)),
        doi=old.doi or new.doi,
        arxiv_id=old.arxiv_id or new.arxiv_id,
        citekey=old.citekey or new.citekey,
        bibtex=old.bibtex or new.bibtex,
    )


def _distinct_id(paper: Paper, ident: str) -> Paper:
    """A second paper titled like an earlier one: its title hash would collide, so add its id."""
    if not paper.paper_id.startswith("t:"):
        return paper  # an arXiv id or a DOI: already distinct
    digest = hashlib.sha1(f"{_title_key(paper.title)}\x1f{ident}".encode()).hexdigest()
    return replace(paper, paper_id=f"t:{digest[:16]}")


class _Merger:
    """Merges records that are one paper, in reading order.

    Records with no identity (page dumps, plain JSON) merge by normalized title, as always.
    Records with identities (arXiv id, DOI or an explicit `id`) merge with a paper that shares
    any of them, or with a same-title paper that has none yet ("an arXiv id beats a title
    hash"): two records that share a title but not an id stay two papers.
    """

    def __init__(self) -> None:
        self.papers: list[Paper] = []
        self._idents: list[tuple[str, ...]] = []
        self._by_title: dict[str, list[int]] = {}
        self._by_ident: dict[str, int] = {}

    def add(self, paper: Paper, idents: tuple[str, ...]) -> None:
        key = _title_key(paper.title)
        same_title = self._by_title.get(key, [])
        if not idents:
            at = same_title[0] if same_title else None
        else:
            at = next((self._by_ident[i] for i in idents if i in self._by_ident), None)
            if at is None:
                at = next((i for i in same_title if not self._idents[i]), None)
        if at is None:
            if idents and same_title:
                paper = _distinct_id(paper, idents[0])
            at = len(self.papers)
            self.papers.append(paper)
            self._idents.append(idents)
            self._by_title.setdefault(key, []).append(at)
        else:
            self.papers[at] = merge_papers(self.papers[at], paper)
            self._idents[at] = tuple(dict.fromkeys(self._idents[at] + idents))
        for ident in idents:
            self._by_ident.setdefault(ident, at)


class ProblemLog:
    """Problems of a read: the first `keep` in full, the rest only counted (bounded memory).

    `count` is the number of records they stand for (what ingest reports as skipped), `problems`
    the number of problems: one problem may stand for a whole file that vanished mid-read.
    """

    def __init__(self, keep: int = 100) -> None:
        self.shown: list[Problem] = []
        self.count = 0
        self.problems = 0
        self._keep = keep

    def append(self, problem: Problem) -> None:
        self.count += problem.records
        self.problems += 1
        if len(self.shown) < self._keep:
            self.shown.append(problem)


def _records(files: list[tuple[Path, str, str]], problems, tally: Counter | None = None,
             cut: dict[str, Problem] | None = None) -> Iterator[_Record]:
    """Every good record of `files`; `tally` counts them per file, `cut` gets each file that
    could not be read to its end (reported as one problem at the line where reading stopped)."""
    for path, display, fmt in files:
        try:
            for record in _READERS[fmt](path, display, problems):
                if tally is not None:
                    tally[display] += 1
                yield record
        except Unreadable as err:
            problems.append(err.problem)
            if cut is not None:
                cut[display] = err.problem


def _strict_error(problems: list[Problem], count: int) -> CorpusError:
    shown = "; ".join(str(p) for p in problems[:_STRICT_SHOWN])
    more = ", ..." if count > _STRICT_SHOWN else ""
    noun = "record" if count == 1 else "records"
    return CorpusError(f"{count} malformed {noun} (first: {shown}{more}); fix them or drop --strict")


class PaperStream:
    """The merged papers of some files, streamed in two passes with bounded memory.

    Pass 1 (in the constructor) reads every record but keeps only a hash of its title key and
    identity: 16 bytes a record (a few more for records with two ids, a .bib entry with an arXiv
    id and a DOI), 43 MB for the 2.7M-record arXiv snapshot. Records whose title or identity
    occurs once (nearly all of an arXiv snapshot) cannot merge with anything, so
    pass 2 (iteration) yields them as it reads them; the rest (page-dump duplicates) wait in a
    `_Merger` and are yielded at the end. Problems come from pass 1, so `strict` raises before
    anything is yielded.

    A file may change between or during the passes (still being written, deleted, replaced).
    Each file's size, mtime and inode are taken before pass 1 and compared after pass 2, with
    the records each pass got from it; a difference is one more problem that counts the records
    read but not stored, and `complete` turns False, so `--prune` deletes nothing.
    """

    def __init__(self, paths: Iterable[PathLike] | PathLike, strict: bool = False) -> None:
        from array import array

        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self._files = _expand(paths)
        self._stamps = {display: stamp(path) for path, display, _ in self._files}
        self.problems = ProblemLog()
        self._tally: Counter = Counter()
        self._cut: dict[str, Problem] = {}
        # A record has at most two ids: an arXiv id or explicit id, and a DOI. Second ids are
        # few (a .bib entry with both) and kept by record number, so a snapshot stays at 16 bytes.
        titles, firsts, seconds = array("q"), array("q"), {}
        for paper, idents in _records(self._files, self.problems, self._tally, self._cut):
            titles.append(hash(_title_key(paper.title)))
            firsts.append(hash(idents[0]) if idents else 0)
            if len(idents) > 1:
                seconds[len(firsts) - 1] = hash(idents[1])
        if strict and self.problems.count:
            raise _strict_error(self.problems.shown, self.problems.count)
        # Files not read whole or not the same at the end, with why ("F.jsonl vanished ...").
        self.incomplete: list[str] = [f"{d} could not be read to its end" for d in self._cut]
        self.records = len(titles)
        self._dup_titles = _repeated(titles)
        self._dup_idents = _repeated(firsts + array("q", seconds.values())) - {0}
        # Exact paper count: unrepeated records are one paper each; merge the rest by keys only.
        keys = _Merger()
        singles = 0
        for n, (t, i) in enumerate(zip(titles, firsts)):
            j = seconds.get(n, 0)
            if t in self._dup_titles or i in self._dup_idents or j in self._dup_idents:
                idents = tuple(str(h) for h in (i, j) if h)
                keys.add(Paper("", f"{t & 0xFFFFFFFFFFFFFFFF:x}", ""), idents)
            else:
                singles += 1
        self.papers = singles + len(keys.papers)

    @property
    def complete(self) -> bool:
        """Every file was read to its end, twice, and is unchanged (known once iterated)."""
        return not self.incomplete

    def __iter__(self) -> Iterator[Paper]:
        waiting = _Merger()
        tally: Counter = Counter()
        cut: dict[str, Problem] = {}
        # Problems were counted by pass 1; a file that changed since is checked at the end.
        for paper, idents in _records(self._files, ProblemLog(keep=0), tally, cut):
            if (hash(_title_key(paper.title)) in self._dup_titles
                    or any(hash(i) in self._dup_idents for i in idents)):
                waiting.add(paper, idents)
            else:
                yield paper
        yield from waiting.papers
        self._check_unchanged(tally, cut)

    def _check_unchanged(self, tally: Counter, cut: dict[str, Problem]) -> None:
        """One problem per file that is not what pass 1 read (see the class docstring)."""
        for path, display, _ in self._files:
            why, line = change(self._stamps[display], stamp(path)), 1
            if display in cut and display not in self._cut:
                line = cut[display].line
                why = why or cut[display].reason.replace("cannot read", "could not be read")
            if why is None and tally[display] != self._tally[display]:
                why = "changed while it was read"
            if why is None:
                continue
            read, lost = self._tally[display], max(self._tally[display] - tally[display], 0)
            reason = (f"{why}: {lost} of the {read} records read from it were not stored; "
                      "run the ingest again once the file is complete")
            self.problems.append(Problem(display, line, reason, records=lost))
            self.incomplete.append(f"{display} {why}")


def _repeated(values) -> set[int]:
    """The values that occur more than once (numpy sort: 2.7M hashes in ~0.3 s)."""
    import numpy as np

    arr = np.frombuffer(values, dtype=np.int64) if len(values) else np.zeros(0, np.int64)
    arr = np.sort(arr)
    return set(arr[1:][arr[1:] == arr[:-1]].tolist())


def bundled_paths() -> list[Path]:
    """The page dumps shipped with the package, sorted."""
    return sorted(BUNDLED_DIR.glob("*.txt"))


def read_papers(paths: Iterable[PathLike] | PathLike, strict: bool = False) -> ReadResult:
    """Read and merge papers from files/folders into memory, in reading order; with `strict`,
    any problem raises CorpusError. Ingest streams instead (PaperStream): same papers."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    problems: list[Problem] = []
    merger = _Merger()
    records = 0
    for paper, idents in _records(_expand(paths), problems):
        records += 1
        merger.add(paper, idents)
    if strict and problems:
        raise _strict_error(problems, len(problems))
    return ReadResult(papers=merger.papers, problems=problems, records=records)
