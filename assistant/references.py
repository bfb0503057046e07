"""Read the BibTeX and RIS files that reference managers export (Zotero, JabRef, Mendeley,
Google Scholar): title and abstract required; authors, year, DOI, arXiv id, URL, keywords (as
categories), the citation key and, for BibTeX, the entry's own text kept.

The files are split by well-kept parsers: `bibtexparser` 2 (entries, @string macros, line
numbers, blocks it could not parse) and `rispy` (tags of one record). LaTeX in BibTeX fields
becomes plain text through `pylatexenc` (which bibtexparser depends on): accents to letters
(`{\\"u}` -> ü), braces that protect capitals dropped, `--` to an en dash, math to its text.
A record that cannot be used becomes a Problem `file:line: reason`, as in the other readers.
"""

from __future__ import annotations

import codecs
import gzip
import logging
import re
import unicodedata
import zlib
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from . import identity
from .formats import _categories, _short, _squash, _year_in, paper_id_for
from .lines import Unreadable
from .types import Paper, Problem

_Record = tuple[Paper, tuple[str, ...]]

# bibtexparser logs every block it could not parse (to stderr, through logging's last resort);
# we report those ourselves as Problems, and only the CLI prints.
logging.getLogger("bibtexparser").addHandler(logging.NullHandler())
logging.getLogger("bibtexparser").propagate = False


class _Bad(Exception):
    """A record this module cannot use; the message becomes the Problem's reason."""


# --------------------------------------------------------------------------- reading bytes

_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_ENCODING_LINE = re.compile(rb"^%\s*Encoding:\s*([A-Za-z0-9_.:-]+)", re.IGNORECASE)


def _lines(path: Path, display: str, problems: list[Problem]) -> tuple[list[str], set[int]]:
    """The file's lines (1-based index = position + 1) and the numbers of lines not decodable.

    UTF-8 unless the file says otherwise in JabRef's header (`% Encoding: ISO-8859-1`). A line
    that does not decode is reported once, and the record holding it is skipped by the caller.
    """
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as raw:
            data = raw.read()
    except (OSError, EOFError, zlib.error) as err:  # truncated or corrupt .gz, unreadable file
        # Unreadable: the file counts as not read whole, so `--prune` deletes nothing (lines.py)
        raise Unreadable(Problem(display, 1, f"cannot read: {_squash(str(err)) or type(err).__name__}"))
    bom = next((enc for mark, enc in _BOMS if data.startswith(mark)), None)
    if bom:  # UTF-16/32 with a byte-order mark: decoded whole (its bytes hold NULs and 0x0A)
        return re.split(r"\r\n|\r|\n", data.decode(bom, errors="replace")), set()
    encoding = _declared_encoding(data[:1000])
    lines, bad = [], set()
    for number, chunk in enumerate(data.splitlines(), start=1):
        try:
            text = chunk.decode("utf-8-sig" if number == 1 and encoding == "utf-8" else encoding)
        except UnicodeDecodeError as err:
            problems.append(Problem(display, number,
                                    f"not valid {encoding.upper()} (byte {err.start + 1} of the line)"))
            bad.add(number)
            text = chunk.decode(encoding, errors="replace")
        lines.append(text)
    return lines, bad


def _declared_encoding(head: bytes) -> str:
    for line in head.splitlines()[:5]:
        if match := _ENCODING_LINE.match(line.lstrip(b"\xef\xbb\xbf")):
            try:
                return codecs.lookup(match.group(1).decode("ascii")).name
            except LookupError:
                break
    return "utf-8"


# --------------------------------------------------------------------------- LaTeX -> text

# Text that needs a TeX reading: a macro other than an escaped special character, math, a tie,
# TeX dashes or quotes. Most abstracts hold none, and pylatexenc costs ~1 ms a kilobyte.
_NEEDS_TEX = re.compile(r"\\(?![%&_#$])|\$|~|--|``|''")
_UNESCAPED = re.compile(r"(?<!\\)([%&#])")  # literal in a .bib field, special to TeX
_ESCAPED = re.compile(r"\\([%&_#$])")


@lru_cache(maxsize=1)
def _converter():
    from pylatexenc.latex2text import LatexNodes2Text, MacroTextSpec, get_default_latex_context_db

    context = get_default_latex_context_db()
    dropped = ("cite", "citep", "citet", "citealp", "citeauthor", "ref", "eqref", "label")
    macros = [MacroTextSpec(name, simplify_repl="") for name in dropped]
    macros += [MacroTextSpec("url", simplify_repl="%s"), MacroTextSpec("LaTeX", simplify_repl="LaTeX"),
               MacroTextSpec("TeX", simplify_repl="TeX")]
    context.add_context_category("paper-assistant", prepend=True, macros=macros)
    return LatexNodes2Text(math_mode="text", strict_latex_spaces="macros", latex_context=context)


def latex_text(value: str) -> str:
    """A BibTeX field's LaTeX as plain text: `M{\\"u}ller` -> `Müller`, `{BERT}` -> `BERT`,
    `1--10` -> `1–10`, `$\\alpha$-divergence` -> `α-divergence`, `5\\%` -> `5%`.

    NFKC folds what math turns into styled letters (`\\mathbf{W}` -> 𝐖 -> W), so search and the
    reader see ordinary letters. A literal `%`, `&` or `#` (exports do not always escape them) is
    kept as a character, not read as a TeX comment or alignment.
    """
    text = _UNESCAPED.sub(r"\\\1", value)
    if _NEEDS_TEX.search(text):
        text = "".join(_tex(piece) if tex else _plain(piece) for piece, tex in _pieces(text))
    else:
        text = _plain(text)
    return _squash(unicodedata.normalize("NFKC", text))


def _tex(piece: str) -> str:
    try:
        return _converter().latex_to_text(_flatten(piece))
    except (RecursionError, ValueError, IndexError):  # whatever else it cannot read
        return _plain(piece)


_WORD = re.compile(r"\s+|\S+")
_TEXISH = _NEEDS_TEX  # braces alone need none: a plain word's braces are dropped
_CONTROL_WORD_AT_END = re.compile(r"\\[A-Za-z]+$")


def _pieces(text: str) -> list[tuple[str, bool]]:
    """`text` cut into pieces that join back into it: (piece, needs a TeX reading).

    pylatexenc reads ~1 ms a kilobyte, and an abstract is mostly plain words around a few TeX
    spots: only the words that hold TeX are read by it, each spot whole (a braced group or math
    spanning spaces, a control word and the word after it: `\\c c`). 5,000 Zotero-like entries
    (1 KB abstracts with a few TeX spots each) read in 7 s this way, 22 s with every field whole
    through pylatexenc, to the same text.
    """
    pieces: list[list] = []
    depth, math, glued = 0, False, False
    for word in _WORD.findall(text):
        open_group = pieces and pieces[-1][1] and (depth > 0 or math or glued)
        if open_group:
            pieces[-1][0] += word
        elif word.isspace() or not _TEXISH.search(word):
            if pieces and not pieces[-1][1]:
                pieces[-1][0] += word
            else:
                pieces.append([word, False])
            continue
        else:
            pieces.append([word, True])
        if word.isspace():
            continue
        depth = max(0, depth + word.count("{") - word.count("}")
                    + word.count("\\}") - word.count("\\{"))
        math ^= (word.count("$") - word.count("\\$")) % 2 == 1
        glued = bool(_CONTROL_WORD_AT_END.search(word))
    return [(piece, tex) for piece, tex in pieces]


_MAX_DEPTH = 32  # pylatexenc recurses per brace level: deeper braces are dropped first


def _flatten(text: str) -> str:
    """Drop the braces nested deeper than _MAX_DEPTH (their text stays): one linear pass."""
    if text.count("{") <= _MAX_DEPTH:
        return text
    out, depth = [], 0
    for char in text:
        if char == "{":
            depth += 1
            if depth > _MAX_DEPTH:
                continue
        elif char == "}" and depth > 0:
            depth -= 1
            if depth >= _MAX_DEPTH:
                continue
        out.append(char)
    return "".join(out)


def _plain(text: str) -> str:
    """Escaped specials unescaped, every brace dropped: linear whatever the nesting."""
    return _ESCAPED.sub(r"\1", text).replace("{", "").replace("}", "")


# --------------------------------------------------------------------------- BibTeX


def _value(raw: str, strings: dict[str, str]) -> str:
    """A field's raw value (`{...}`, `"..."`, a number, a macro, or parts joined by `#`) resolved:
    enclosing delimiters removed, @string macros replaced."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, char in enumerate(raw):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif char == '"' and depth == 0:
            quoted = not quoted
        elif char == "#" and depth == 0 and not quoted:
            parts.append(raw[start:i])
            start = i + 1
    parts.append(raw[start:])
    return "".join(_part(p.strip(), strings) for p in parts)


def _part(part: str, strings: dict[str, str]) -> str:
    if len(part) >= 2 and (part[0], part[-1]) in (("{", "}"), ('"', '"')):
        return part[1:-1]
    return strings.get(part.lower(), part)  # a macro; a number or an unknown name as written


def read_bibtex(path: Path, display: str, problems: list[Problem]) -> Iterator[_Record]:
    """Entries of a .bib file (JabRef, Zotero, Google Scholar, biblatex) as papers."""
    import bibtexparser
    from bibtexparser import model

    lines, bad = _lines(path, display, problems)
    # No middleware: values stay raw, so `#` joins and macros are resolved here, in order.
    library = bibtexparser.parse_string("\n".join(lines), parse_stack=[])
    strings: dict[str, str] = {}
    keys: dict[str, int] = {}
    for block in library.blocks:
        line = block.start_line + 1
        last = line + block.raw.count("\n")
        if isinstance(block, model.String):
            strings[block.key.lower()] = _value(block.value, strings)
        elif isinstance(block, model.ParsingFailedBlock):
            if not bad.intersection(range(line, last + 1)):
                problems.append(Problem(display, line, _failure(block, keys)))
        elif isinstance(block, model.Entry) and not bad.intersection(range(line, last + 1)):
            keys.setdefault(block.key, line)
            try:
                yield _entry_paper(block, strings, path.name)
            except _Bad as err:
                problems.append(Problem(display, line, f"{err} (entry {block.key})"))


_RAW_KEY = re.compile(r"@\w+\s*[{(]\s*([^,\s{}()=]+)\s*,")


def _failure(block, keys: dict[str, int]) -> str:
    """Why a block was not parsed, in one line."""
    from bibtexparser import model

    if isinstance(block, model.DuplicateBlockKeyBlock):
        first = keys.get(block.key)
        where = f" (first at line {first})" if first else ""
        return f"citation key {block.key} used twice{where}"
    if isinstance(block, model.DuplicateFieldKeyBlock):
        fields = ", ".join(sorted(block.duplicate_keys))
        return f"field {fields} given twice (entry {block.ignore_error_block.key})"
    reason = getattr(block.error, "abort_reason", None) or str(block.error) or type(block.error).__name__
    key = _RAW_KEY.match(block.raw)
    return f"cannot parse entry{' ' + key.group(1) if key else ''}: {_squash(reason)}"


def _entry_paper(entry, strings: dict[str, str], source: str) -> _Record:
    fields: dict[str, str] = {}
    for field in entry.fields:
        name = field.key.lower()
        if name in fields:  # "Title" and "title": bibtexparser compares keys case-sensitively
            raise _Bad(f"field {name} given twice")
        fields[name] = _value(field.value, strings)
    title = _required(fields, "title")
    abstract = _required(fields, "abstract")
    doi = identity.doi(fields.get("doi")) or identity.doi(fields.get("url"))
    arxiv = _bib_arxiv(fields, doi)
    if arxiv and doi and identity.arxiv_of_doi(doi):
        doi = None  # arXiv's own DOI says no more than the arXiv id
    url = _plain(fields["url"]).strip() if fields.get("url") else None
    paper = Paper(
        paper_id=paper_id_for(title, arxiv, doi),
        title=title,
        abstract=abstract,
        authors=_bib_authors(fields.get("author", "")),
        year=_year_in(fields.get("year")) or _year_in(fields.get("date")),
        url=url or _link(arxiv, doi),
        categories=_bib_categories(fields),
        sources=(source,),
        doi=doi,
        arxiv_id=arxiv,
        citekey=entry.key,
        bibtex=entry.raw.strip(),
    )
    return paper, identity.identities(paper)


def _bib_categories(fields: dict[str, str]) -> tuple[str, ...]:
    """arXiv's primary class ("cs.CL", as the snapshot's categories), then the keywords."""
    keywords = re.split(r"[,;]", latex_text(fields.get("keywords", "")))
    return _categories([fields.get("primaryclass", ""), *keywords])


def _required(fields: dict[str, str], name: str) -> str:
    if name not in fields:
        raise _Bad(f"missing {name}")
    text = latex_text(fields[name])
    if not text:
        raise _Bad(f"empty {name}")
    return text


def _bib_arxiv(fields: dict[str, str], doi: str | None) -> str | None:
    """The arXiv id an entry names, wherever the exporter put it."""
    eprint = fields.get("eprint", "")
    kind = (fields.get("archiveprefix") or fields.get("eprinttype") or "").lower()
    if eprint and kind in ("", "arxiv"):
        if found := identity.arxiv_id(eprint):
            return found
    return (identity.arxiv_of_doi(doi)
            or identity.arxiv_id(fields.get("url"))
            or identity.arxiv_in_text(fields.get("journal"))  # Google Scholar: "arXiv preprint arXiv:X"
            or identity.arxiv_in_text(fields.get("note"))  # Zotero: "arXiv:2305.12345 [cs]"
            or _semantic_scholar(fields))


def _semantic_scholar(fields: dict[str, str]) -> str | None:
    """Semantic Scholar writes `journal = {ArXiv}, volume = {abs/2305.12345}`."""
    if (fields.get("journal") or "").strip().lower() == "arxiv":
        return identity.arxiv_in_text(fields.get("volume"))
    return None


def _bib_authors(value: str) -> tuple[str, ...]:
    """"Last, First and {Org Name} and others" -> ("First Last", "Org Name", "et al.")."""
    from bibtexparser.middlewares.names import (
        InvalidNameError,
        parse_single_name_into_parts,
        split_multiple_persons_names,
    )

    names = []
    for raw in split_multiple_persons_names(value) if value.strip() else []:
        if raw.strip().lower() == "others":
            names.append("et al.")
            continue
        try:
            parts = parse_single_name_into_parts(raw)
            words = parts.first + parts.von + parts.last + parts.jr
        except InvalidNameError:
            words = [raw]
        # The store keeps authors as "A, B": a comma inside one name ("{Barnes, Noble and Co}")
        # would split it in two when read back.
        name = latex_text(" ".join(words)).replace(",", "")
        if name:
            names.append(name)
    return tuple(names)


def _link(arxiv: str | None, doi: str | None) -> str | None:
    if arxiv:
        return f"https://arxiv.org/abs/{arxiv}"
    return f"https://doi.org/{doi}" if doi else None


# --------------------------------------------------------------------------- RIS

_TAG = re.compile(r"^([A-Z][A-Z0-9])  -(?: (.*))?$")  # "TY  - JOUR"; "ER  -" may end there


def read_ris(path: Path, display: str, problems: list[Problem]) -> Iterator[_Record]:
    """Records of a RIS file (Zotero, Mendeley, EndNote) as papers."""
    lines, bad = _lines(path, display, problems)
    for start, record in _ris_records(lines, display, problems, bad):
        if bad.intersection(range(start, start + len(record))):
            continue  # its undecodable line is reported already
        try:
            yield _ris_paper("\n".join(record), path.name)
        except _Bad as err:
            problems.append(Problem(display, start, str(err)))


def _ris_records(lines: list[str], display: str, problems: list[Problem],
                 bad: set[int] = frozenset()) -> Iterator[tuple[int, list[str]]]:
    """(first line number, lines) of each record from its `TY` to its `ER` line.

    rispy reads records from text but counts no lines and drops a record with no `ER`; split
    here, so a problem names its line and an unclosed record is reported.
    """
    start, record = 0, []
    for number, text in enumerate(lines, start=1):
        tag = _TAG.match(text.rstrip())
        if tag and tag.group(1) == "TY":
            if record:
                problems.append(Problem(display, start, "record has no ER line before the next TY"))
            start, record = number, [text]
        elif record:
            record.append(text)
            if tag and tag.group(1) == "ER":
                yield start, record
                record = []
        elif text.strip() and number not in bad:  # an undecodable line is reported once
            problems.append(Problem(display, number, "text outside a record (no TY line before it)"))
    if record:
        problems.append(Problem(display, start, "record has no ER line (file cut short?)"))


def _ris_paper(text: str, source: str) -> _Record:
    import rispy

    entry = rispy.loads(text)[0]
    title = _squash(_first(entry, "title", "primary_title", "short_title") or "")
    abstract = _squash(_first(entry, "abstract", "notes_abstract") or "")
    if not title:
        raise _Bad("missing title (TI)")
    if not abstract:
        raise _Bad(f'missing abstract (AB) in "{_short(title)}"')
    urls = [u for u in entry.get("urls", []) if u.strip()]
    doi = identity.doi(entry.get("doi"))
    arxiv = (identity.arxiv_of_doi(doi)
             or next((a for u in urls if (a := identity.arxiv_id(u))), None)
             or next((a for n in entry.get("notes", []) if (a := identity.arxiv_in_text(n))), None))
    if arxiv and doi and identity.arxiv_of_doi(doi):
        doi = None
    authors = entry.get("authors") or entry.get("first_authors") or []
    paper = Paper(
        paper_id=paper_id_for(title, arxiv, doi),
        title=title,
        abstract=abstract,
        authors=tuple(_ris_name(a) for a in authors if a.strip()),
        year=_year_in(entry.get("year")) or _year_in(entry.get("date")),
        url=urls[0] if urls else _link(arxiv, doi),
        categories=_categories(entry.get("keywords", [])),
        sources=(source,),
        doi=doi,
        arxiv_id=arxiv,
        citekey=(entry.get("id") or "").strip() or None,
    )
    return paper, identity.identities(paper)


def _first(entry: dict, *names: str) -> str | None:
    return next((entry[n] for n in names if isinstance(entry.get(n), str) and entry[n].strip()), None)


def _ris_name(name: str) -> str:
    """RIS writes "Last, First" (or "Last, First, Suffix"): "First Last"."""
    parts = [p.strip() for p in name.split(",") if p.strip()]
    if len(parts) >= 2:
        return _squash(" ".join([parts[1], parts[0], *parts[2:]]))
    return _squash(name)


__all__ = ["latex_text", "read_bibtex", "read_ris"]
