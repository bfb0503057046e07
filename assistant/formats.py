"""One reader per file format: the records of a file as (Paper, identities), or as Problems.

Page dumps (.txt), JSON Lines (papers or the arXiv metadata snapshot) and CSV here; BibTeX and
RIS in references.py. Each reader is a generator over the lines of one file
(`lines.decoded_lines`), so a multi-GB snapshot streams, and every record it meets is either
yielded or reported as `file:line: reason`: whatever text a record holds, never an exception
(the fuzz suite, tests/test_fuzz.py, checks it). Merging records into papers is corpus.py's.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from assistant import identity
from assistant.identity import arxiv_id as _arxiv_id
from assistant.latex import clean_latex as _clean_latex
from assistant.lines import decoded_lines
from assistant.text import normalize_title, valid_text
from assistant.types import Paper, Problem

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
