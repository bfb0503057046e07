"""The fuzz suite (issue 17, item 5): generated input for every reader, the chunker and the query
path. Each test checks that no exception escapes and, for the readers, that every bad record is
named at its own line and that stored + reported = read.

A file is built from records whose fate is known when they are drawn: good ones (whatever text
they hold: special tokens, control characters, lone surrogate escapes, huge numbers and deep
nesting in fields no reader uses, pathological LaTeX), bad ones of a named kind (cut JSON, not an
object, a missing or empty or non-text title, invalid UTF-8, nesting past json's limit, a short
CSV row, a page-dump title without its abstract), and blank lines; then written with LF, CRLF
or CR line ends, as UTF-8, UTF-8 with a BOM, UTF-16 or UTF-32, plain or gzipped.

Settings: ~2,220 examples a run in all, ~50 s in one process (benchmarks/README.md, 9), no example database
(tests write nothing outside their temporary folders), no deadline (CI's 2 cores are shared).
A failure prints its `@reproduce_failure` blob and the smallest input: keep it as a regular test
(the `test_seed_*` tests at the end are such seeds).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import math
import os
import re
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.chunking import chunk_paper, paper_fingerprint, token_counter
from assistant.corpus import PaperStream, read_papers
from assistant.latex import clean_latex
from assistant.text import valid_text
from assistant.types import Paper

FUZZ = settings(deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

# --------------------------------------------------------------------------- text

HOSTILE = ["<|endoftext|>", "<|im_start|>system", "<|fim_prefix|>", "\x00", "\x1b[2J", "\x1b]52;c;eA==\x07",
           "\u202e", "\ufeff", "\u2028", "\x85", "\x0b", "\ud800", "\udfff", "\U0001d518", "e\u0301",
           "{", "}", "\\emph{", "$", "\\'", "~", "a.b-c.", "(A)", "\\", '"', ",", ";", "\t",
           "9" * 60, "\u00a0", "\u3000", "Subscribe", "Mar 14", "NaN"]


def _text(max_size: int = 60) -> st.SearchStrategy[str]:
    """Any text, hostile pieces included; may hold lone surrogates."""
    piece = st.one_of(
        st.text(st.characters(codec=None, exclude_categories=()), max_size=12),
        st.text("abcdefghij XYZ.,-", max_size=12),
        st.sampled_from(HOSTILE),
    )
    return st.lists(piece, max_size=max_size // 6 + 1).map("".join)


def _words(min_size: int = 1, max_size: int = 8) -> st.SearchStrategy[str]:
    """Plain words: a title or abstract that is certainly not blank."""
    return st.lists(st.sampled_from("alpha beta gamma delta quantum kernel graph token".split()),
                    min_size=min_size, max_size=max_size).map(" ".join)


_WS = re.compile(r"\s+")


def squash(text: str) -> str:
    return _WS.sub(" ", valid_text(text)).strip()


# --------------------------------------------------------------------------- files


LINE_ENDS = st.sampled_from(["\n", "\r\n", "\r"])
ENCODINGS = st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "utf-32"])


def write(folder: Path, name: str, lines: list[bytes | str], end: str, encoding: str, gz: bool,
          final_end: bool) -> Path:
    """`lines` (str, or bytes already encoded as UTF-8) joined by `end`, encoded, maybe gzipped."""
    if encoding.startswith("utf-8"):
        parts = [ln if isinstance(ln, bytes) else ln.encode("utf-8") for ln in lines]
        data = end.encode().join(parts) + (end.encode() if final_end else b"")
        if encoding == "utf-8-sig":
            data = codecs.BOM_UTF8 + data
    else:  # bytes lines (invalid UTF-8) are never drawn for these
        data = (end.join(lines) + (end if final_end else "")).encode(encoding)  # with its BOM
    for old in folder.glob(name + "*"):  # the previous example's file (a test reuses its folder)
        old.unlink()
    path = folder / (name + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def file_form():
    return st.tuples(LINE_ENDS, ENCODINGS, st.booleans(), st.booleans())


BLANKS = st.sampled_from(["", "   ", "\t", " \u2028 ", "\x0c"])


# --------------------------------------------------------------------------- JSONL / arXiv

JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                         _text(20))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(_text(8), inner, max_size=3), max_leaves=4)
RAW_EXTRAS = st.sampled_from(["9" * 5_000, "-" + "1" * 4_400, "1" + "0" * 400 + "e99999",
                              "[" * 300 + "]" * 300, '"\\ud800\\udbff x \\udc00"', "1e400"])
BAD_JSON_KINDS = ["cut", "not-object", "no-title", "no-abstract", "empty-title", "title-not-text",
                  "invalid-utf8", "deep"]


@st.composite
def json_record(draw, arxiv: bool) -> tuple[str | bytes, bool]:
    """(a line, whether it is good)."""
    kind = draw(st.sampled_from(["good"] * 3 + BAD_JSON_KINDS))
    title = draw(_latex_title() if arxiv else _text()) + draw(_words())
    obj: dict = {"title": title, "abstract": draw(_text(60)) + draw(_words(3, 12))}
    if arxiv:
        obj.update(id=f"{draw(st.integers(1000, 2999))}.{draw(st.integers(10000, 99999))}",
                   update_date=draw(st.sampled_from(["2023-05-14", "", "x"])),
                   versions=draw(st.sampled_from([[], [{"created": "Sun, 14 May 2023"}], None])))
    extras = draw(st.dictionaries(st.sampled_from(["authors", "year", "url", "categories", "id", "notes"]),
                                  JSON_VALUES, max_size=3))
    obj.update({k: v for k, v in extras.items() if not (arxiv and k == "id")})
    raw_extra = draw(st.none() | RAW_EXTRAS)
    if kind == "no-title":
        del obj["title"]
    elif kind == "no-abstract":
        obj.pop("abstract")
    elif kind == "empty-title":
        obj["title"] = draw(st.sampled_from(["", "  ", "\n\t", "\u2028"]))
    elif kind == "title-not-text":
        obj["title"] = draw(st.one_of(st.integers(), st.lists(st.integers(), max_size=2), st.booleans()))
    elif kind == "not-object":
        return json.dumps(draw(st.one_of(st.lists(JSON_SCALARS, max_size=3), st.integers(),
                                         st.text(max_size=5), st.none()))), False
    elif kind == "deep":
        raw_extra = "[" * 5_000 + "]" * 5_000
    line = json.dumps(obj, ensure_ascii=draw(st.booleans()) or not _encodable(obj))
    if raw_extra is not None:
        line = line[:-1] + ', "raw": ' + raw_extra + "}"
    if kind == "cut":
        return line[: draw(st.integers(1, len(line) - 1))], False
    if kind == "invalid-utf8":
        data = line.encode("utf-8")
        at = draw(st.integers(0, len(data)))
        return data[:at] + b"\xff" + data[at:], False
    return line, kind == "good" and _good_fields(obj, arxiv)


def _encodable(obj: dict) -> bool:
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _good_fields(obj: dict, latex: bool) -> bool:
    for name in ("title", "abstract"):
        value = obj.get(name)
        if not isinstance(value, str):
            return False
        value = valid_text(value)
        if not (clean_latex(value) if latex else squash(value)):
            return False
    return True


def _latex_title() -> st.SearchStrategy[str]:
    depth = st.integers(0, 3_000)
    return st.one_of(
        _text(),
        st.builds(lambda d, t: "{" * d + t + "}" * d, depth, _text(10)),
        st.builds(lambda d, t: "\\emph{" * d + t + "}" * d, st.integers(0, 500), _text(10)),
        st.builds(lambda d: "x^{" * d, st.integers(0, 2_000)),
        st.lists(st.sampled_from(["{", "}", "\\emph{", "$", "\\'e", "\\c c", "~", "\\{", "\\%", "a"]),
                 max_size=40).map("".join),
    )


@st.composite
def jsonl_file(draw, arxiv: bool = False):
    end, encoding, gz, final_end = draw(file_form())
    lines: list[str | bytes] = []
    bad: list[int] = []
    good = records = 0
    for _ in range(draw(st.integers(0, 12))):
        if draw(st.integers(0, 5)) == 0:
            lines.append(draw(BLANKS))
            continue
        line, ok = draw(json_record(arxiv))
        if isinstance(line, bytes) and not encoding.startswith("utf-8"):
            continue  # invalid UTF-8 cannot be written as UTF-16/32
        if not lines and (line if isinstance(line, str) else line.decode("utf-8", "replace")).startswith("["):
            continue  # a first line opening a JSON array is the whole file's problem (tested apart)
        lines.append(line)
        records += 1
        good += ok
        if not ok:
            bad.append(len(lines))
    return lines, (end, encoding, gz, final_end), good, bad, records


TALLY: Counter = Counter()  # examples, records and bad records drawn (benchmarks/fuzz_figures.py)


@pytest.fixture(scope="module", autouse=True)
def _tally():
    """With PAPERS_FUZZ_TALLY set (by benchmarks/fuzz_figures.py), write the tally there."""
    yield
    if os.environ.get("PAPERS_FUZZ_TALLY"):
        Path(os.environ["PAPERS_FUZZ_TALLY"]).write_text(json.dumps(TALLY))


def check_read(path: Path, good: int, bad: list[int], records: int) -> None:
    """Every bad record named at its line, stored + reported = read, each problem one line."""
    TALLY.update(files=1, records=records, bad=len(bad), bytes=path.stat().st_size)
    result = read_papers([path])
    assert sorted(p.line for p in result.problems) == bad, [str(p) for p in result.problems]
    assert result.records == good and result.records + len(result.problems) == records
    for problem in result.problems:
        text = str(problem)
        assert text.startswith(f"{path}:{problem.line}: ") and not re.search(r"[\r\n]", text), text
    stream = PaperStream([path])  # ingest's reader: the same counts, and the same papers
    assert (stream.records, stream.problems.count) == (good, len(bad))
    # the same papers; singles come first in a stream, papers that merge after them
    assert sorted(p.paper_id for p in stream) == sorted(p.paper_id for p in result.papers)
    assert stream.complete
    for paper in result.papers:
        assert paper.title.strip() and paper.abstract.strip()
        (paper.title + paper.abstract + "".join(paper.authors)).encode("utf-8")  # no surrogate


@settings(FUZZ, max_examples=350)
@given(jsonl_file())
def test_fuzz_jsonl_reader(tmp_path, drawn):
    lines, (end, encoding, gz, final_end), good, bad, records = drawn
    path = write(tmp_path, "p.jsonl", lines, end, encoding, gz, final_end)
    check_read(path, good, bad, records)


@settings(FUZZ, max_examples=200)
@given(jsonl_file(arxiv=True))
def test_fuzz_arxiv_snapshot_reader(tmp_path, drawn):
    lines, (end, encoding, gz, final_end), good, bad, records = drawn
    path = write(tmp_path, "arxiv-metadata-oai-snapshot.json", lines, end, encoding, gz, final_end)
    check_read(path, good, bad, records)


# --------------------------------------------------------------------------- CSV


@st.composite
def csv_file(draw):
    end, encoding, gz, final_end = draw(file_form())
    extra = draw(st.lists(st.sampled_from(["authors", "year", "url", "notes", "x"]), unique=True, max_size=3))
    header = draw(st.permutations(["title", "abstract", *extra]))
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
    lines: list[str | bytes] = [_csv_line([h.upper() if draw(st.booleans()) else h for h in header], quoting)]
    bad: list[int] = []
    good = records = 0
    for _ in range(draw(st.integers(0, 10))):
        kind = draw(st.sampled_from(["good"] * 3 + ["short", "long", "empty-title", "empty-abstract",
                                                     "title-newline", "invalid-utf8"]))
        cells = {"title": draw(_text()) + draw(_words()), "abstract": draw(_text(60)) + draw(_words(3))}
        cells.update({h: draw(_text(20)) for h in extra})
        if draw(st.booleans()):
            cells["abstract"] = cells["abstract"].replace(" ", "\n", 2)  # a quoted newline
        if kind == "empty-title":
            cells["title"] = " "
        elif kind == "empty-abstract":
            cells["abstract"] = ""
        elif kind == "title-newline":
            cells["title"] = "First half\nsecond half"
        row = [valid_text(cells[h]) for h in header]
        if kind == "short":
            row = row[: draw(st.integers(1, len(row) - 1))]
        elif kind == "long":
            row = row + ["surplus"]
        if not any(cell.strip() for cell in row):
            continue  # a blank row is no record
        line = _csv_line(row, quoting)
        if kind == "invalid-utf8":
            if not encoding.startswith("utf-8") or re.search(r"[\r\n]", line):
                continue  # one line only: a dropped line inside quotes would shift the rest
            line = line.encode("utf-8") + b"\xfe"
        at = 1 + sum(_breaks(ln) + 1 for ln in lines)
        lines.append(line)
        records += 1
        ok = kind == "good" and bool(squash(row[header.index("title")])) and bool(
            squash(row[header.index("abstract")])) and "\n" not in _norm(row[header.index("title")]).strip()
        good += ok
        if not ok:
            bad.append(at)
    return lines, (end, encoding, gz, final_end), good, bad, records


def _csv_line(row: list[str], quoting: int) -> str:
    out = io.StringIO()  # "\r\n" as the terminator: csv quotes fields holding CR or LF
    csv.writer(out, quoting=quoting, lineterminator="\r\n").writerow(row)
    return out.getvalue()[:-2]


def _norm(text: str) -> str:
    return re.sub(r"\r\n?", "\n", text)


def _breaks(line: str | bytes) -> int:
    """Line ends inside one written record (quoted newlines), as the reader counts them."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    return len(re.findall(r"\r\n?|\n", text))


@settings(FUZZ, max_examples=350)
@given(csv_file())
def test_fuzz_csv_reader(tmp_path, drawn):
    lines, (end, encoding, gz, final_end), good, bad, records = drawn
    check_read(write(tmp_path, "p.csv", lines, end, encoding, gz, final_end), good, bad, records)


# --------------------------------------------------------------------------- page dumps

_PAGE_WORDS = st.sampled_from("Learning Graphs for Tokens in Deep Models with Sparse Attention".split())


@st.composite
def page_title(draw) -> str:
    """A title line: short, not boilerplate, may hold hostile characters."""
    words = draw(st.lists(_PAGE_WORDS, min_size=1, max_size=10))
    noise = draw(st.sampled_from(["", "<|endoftext|>", "\x1b[1m", "\u202e", "[/]", "\ud800", "\x00"]))
    return " ".join(words) + " " + noise + " Q" + str(draw(st.integers(0, 999)))


@st.composite
def page_abstract(draw) -> str:
    body = " ".join(draw(st.lists(_PAGE_WORDS, min_size=40, max_size=80)))
    return body + draw(st.sampled_from([".", " <|im_start|>.", " \x1b]0;x\x07 end.", " {{x}}."]))


@st.composite
def page_file(draw):
    end, encoding, gz, final_end = draw(file_form())
    lines: list[str | bytes] = []
    bad: list[int] = []
    good = records = 0
    pending: int | None = None  # line of a title waiting for its abstract
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["title", "title", "abstract", "abstract", "blank", "boilerplate",
                                     "invalid-utf8"]))
        if kind == "blank":
            lines.append(draw(BLANKS))
        elif kind == "boilerplate":
            lines.append(draw(st.sampled_from(["Subscribe", "Mar 14", "Get trending papers in your email inbox!", "New"])))
        elif kind == "invalid-utf8":
            if not encoding.startswith("utf-8"):
                continue
            lines.append(b"Broken \xc3\x28 line")
            records += 1
            bad.append(len(lines))
        elif kind == "title":
            lines.append(valid_text(draw(page_title())).replace("\x00", ""))
            if pending is not None:
                bad.append(pending)  # the earlier title never got its abstract
                records += 1
            pending = len(lines)
        else:
            lines.append(draw(page_abstract()))
            records += 1
            if pending is None:
                bad.append(len(lines))  # an abstract without a title
            else:
                good += 1
                pending = None
    if pending is not None:
        bad.append(pending)
        records += 1
    return lines, (end, encoding, gz, final_end), good, sorted(bad), records


@settings(FUZZ, max_examples=300)
@given(page_file())
def test_fuzz_page_dump_reader(tmp_path, drawn):
    lines, (end, encoding, gz, final_end), good, bad, records = drawn
    check_read(write(tmp_path, "p.txt", lines, end, encoding, gz, final_end), good, bad, records)


# --------------------------------------------------------------------------- BibTeX and RIS

BIB_HOSTILE = st.sampled_from(["<|endoftext|>", "\\emph{Deep}", "$x^2$", "\\'e", "~", "--", "\u202e",
                               "\u00e9", "\\%", "{BERT}", "{{nested {braces}}}", "\\ud800", "\x1b[2J", "\x00"])


def _bib_text() -> st.SearchStrategy[str]:
    """Field text with balanced braces and no line break: hostile pieces around plain words."""
    return st.tuples(st.lists(BIB_HOSTILE, max_size=3), _words(1, 6)).map(
        lambda t: " ".join(t[0]) + " " + t[1])


@st.composite
def bib_file(draw):
    end, _, gz, final_end = draw(file_form())
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]))
    lines: list[str | bytes] = []
    bad: list[int] = []
    good = records = 0
    keys: set[str] = set()
    if draw(st.booleans()):
        lines += ['@string{venue = "Venue of " # "Tests"}', ""]
    for n in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["good"] * 3 + ["no-abstract", "no-title", "empty-title",
                                                     "twice", "invalid-utf8", "comment"]))
        if kind == "comment":
            lines += [draw(st.sampled_from(["% a comment", "free text between entries", ""]))]
            continue
        if kind == "twice" and not keys:
            kind = "good"  # nothing to repeat yet
        key = draw(st.sampled_from(sorted(keys))) if kind == "twice" else f"key{n}"
        fields = {"title": "{" + draw(_bib_text()) + "}", "abstract": "{" + draw(_bib_text()) + "}",
                  "author": "{Doe, Jane and Roe, R.}", "year": str(draw(st.integers(1900, 2100)))}
        if draw(st.booleans()):
            fields["journal"] = "venue"
        if draw(st.booleans()):
            fields["eprint"] = f"{{{draw(st.integers(2001, 2412))}.{draw(st.integers(10000, 99999))}}}"
        if kind == "no-abstract":
            del fields["abstract"]
        elif kind == "no-title":
            del fields["title"]
        elif kind == "empty-title":
            fields["title"] = "{ }"
        entry = [f"@article{{{key},"] + [f"  {k} = {v}," for k, v in fields.items()] + ["}"]
        start = len(lines) + 1
        if kind == "invalid-utf8":
            if not encoding.startswith("utf-8"):
                continue
            at = draw(st.integers(1, len(entry) - 2))
            entry[at] = entry[at].encode("utf-8") + b" \xff"
            bad_line = start + at
        lines += entry + [""]
        records += 1
        if kind == "good" and key not in keys:
            good += 1
        else:
            bad.append(bad_line if kind == "invalid-utf8" else start)
        if kind != "invalid-utf8":  # an unreadable entry is not read: its key is not taken
            keys.add(key)
    return lines, (end, encoding, gz, final_end), good, sorted(bad), records


@settings(FUZZ, max_examples=120)
@given(bib_file())
def test_fuzz_bibtex_reader(tmp_path, drawn):
    lines, (end, encoding, gz, final_end), good, bad, records = drawn
    check_read(write(tmp_path, "library.bib", lines, end, encoding, gz, final_end), good, bad, records)


@st.composite
def ris_file(draw):
    end, _, gz, final_end = draw(file_form())
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]))
    lines: list[str | bytes] = []
    bad: list[int] = []
    good = records = 0
    unclosed = False  # a record without ER runs on to the next TY: stray lines are part of it
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["good"] * 3 + ["no-title", "no-abstract", "no-er", "outside",
                                                     "invalid-utf8"]))
        if kind == "outside":
            lines.append(draw(st.sampled_from(["stray text", "XX  - not in a record"])))
            if not unclosed:
                records += 1
                bad.append(len(lines))
            continue
        record = ["TY  - JOUR", f"TI  - {draw(_text(30))} {draw(_words())}",
                  f"AB  - {draw(_text(60))} {draw(_words(3))}", "AU  - Doe, Jane",
                  f"PY  - {draw(st.integers(1900, 2100))}", "ER  - "]
        record = [valid_text(r).replace("\r", " ").replace("\n", " ") for r in record]
        if kind == "no-title":
            del record[1]
        elif kind == "no-abstract":
            del record[2]
        elif kind == "no-er":
            record.pop()
        start = len(lines) + 1
        if kind == "invalid-utf8" and not encoding.startswith("utf-8"):
            continue  # not written: the record before it stays as it was (unclosed or not)
        unclosed = kind == "no-er"
        if kind == "invalid-utf8":
            record[3] = record[3].encode("utf-8") + b" \xff"
            bad.append(start + 3)
        else:
            ok = kind == "good" and squash(record[1][6:]) and squash(record[2][6:])
            good += bool(ok)
            if not ok:
                bad.append(start)
        lines += record + [""]
        records += 1
    return lines, (end, encoding, gz, final_end), good, sorted(bad), records


@settings(FUZZ, max_examples=120)
@given(ris_file())
def test_fuzz_ris_reader(tmp_path, drawn):
    lines, (end, encoding, gz, final_end), good, bad, records = drawn
    check_read(write(tmp_path, "library.ris", lines, end, encoding, gz, final_end), good, bad, records)


# --------------------------------------------------------------------------- raw bytes


@settings(FUZZ, max_examples=300)
@given(st.sampled_from(["p.jsonl", "p.csv", "p.txt", "a.json", "p.jsonl.gz", "p.bib", "p.ris"]),
       st.one_of(st.binary(max_size=600),
                 st.lists(st.sampled_from([b"{", b"}", b'"', b",", b"\n", b"\r", b"title", b"abstract",
                                           b"@article{k,", b"TY  - JOUR\n", b"ER  - \n", b"AB  - x\n",
                                           b":", b"[", b"\xff", b"\x00", b"\xfe\xff", b"\xef\xbb\xbf",
                                           b"\\u", b"d800", b"x" * 300, b"\x1f\x8b"]),
                          max_size=60).map(b"".join)))
def test_fuzz_any_bytes_in_any_reader(tmp_path, name, data):
    """Bytes that are not a format at all: no exception, each problem one line at a real line,
    never more records and problems than lines."""
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") and data[:1] == b"{" else data)
    TALLY.update(raw_files=1, raw_bytes=len(data))
    result = read_papers([path])
    lines = max(1, len(re.findall(rb"\r\n?|\n", data)) + 1)
    entries = data.count(b"@") if name.endswith(".bib") else 0  # BibTeX entries may share a line
    assert result.records + len(result.problems) <= lines + 1 + entries
    for problem in result.problems:
        assert 1 <= problem.line <= lines + 1 and "\n" not in str(problem) and "\r" not in str(problem)


# --------------------------------------------------------------------------- the chunker


@pytest.fixture(scope="module")
def count_tokens(tmp_path_factory):
    from assistant.assets import ensure_tiktoken

    ensure_tiktoken(tmp_path_factory.getbasetemp() / "papers-cache")  # conftest's shared cache
    return token_counter()


@settings(FUZZ, max_examples=300)
@given(_text(30), st.one_of(_text(400), st.lists(_text(60), max_size=12).map(" ".join),
                            st.builds(lambda w, n: (w + " ") * n, _words(1, 3), st.integers(0, 400))),
       st.sampled_from([(220, 40), (64, 10), (32, 0)]))
def test_fuzz_chunker(count_tokens, title, abstract, sizes):
    size, overlap = sizes
    TALLY.update(chunked=1)
    paper = Paper("t:x", title or "T", abstract)
    chunks = chunk_paper(paper, size, overlap)
    paper_fingerprint(paper, size, overlap)
    assert chunks and [c.position for c in chunks] == list(range(len(chunks)))
    assert all(c.n_chunks == len(chunks) and c.chunk_id == f"t:x#{c.position}" for c in chunks)
    for chunk in chunks:
        assert chunk.text
        if abstract.strip():
            assert chunk.text in abstract and count_tokens(chunk.text) <= size


# --------------------------------------------------------------------------- the query path


@pytest.fixture(scope="module")
def retriever(bundled_store):
    from assistant.answer import Assistant

    return Assistant(bundled_store).retriever


QUERIES = st.one_of(
    _text(80),
    st.binary(max_size=40).map(os.fsdecode),  # argv bytes, as Python decodes them
    st.sampled_from(["", " ", "\t\n", "stability gap", "<|endoftext|>", "a.a.a.a." * 200, "(((((", "LLMs?" * 50,
                     "x" * 5_000, "\x00", "\ud83d", "PFN (prior-data fitted networks)"]),
)
FILTERS = st.one_of(st.none(), st.builds(
    lambda y0, y1, c, s: __import__("assistant.types", fromlist=["Filters"]).Filters(y0, y1, c, s),
    st.none() | st.integers(-5, 3000), st.none() | st.integers(-5, 3000),
    st.none() | st.sampled_from(["cs.CL", "", "\ud800", "x" * 300]), st.none() | _text(10)))


@settings(FUZZ, max_examples=150)
@given(QUERIES, st.integers(1, 12), FILTERS)
def test_fuzz_query_path(retriever, query, k, filters):
    """What `papers search` does with a query: hits, or none; never an exception."""
    from assistant.cli import _text_arg
    from assistant.errors import UsageError

    TALLY.update(queries=1)
    try:
        checked = _text_arg(query, "query")
    except UsageError:
        assert not valid_text(query).strip()
        checked = query
    hits = retriever.search(checked, k=k, filters=filters)
    assert len(hits) <= k and [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert all(math.isfinite(h.score) and h.title for h in hits)
    if not valid_text(query).strip():
        assert hits == []
    bm25 = retriever.bm25
    bm25.coverage(checked, "some abstract text about the stability gap")
    bm25.named_papers(checked, 3)
    bm25.title_match(checked, [h.paper_id for h in hits])


# --------------------------------------------------------------------------- through ingest


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory):
    from assistant.config import Settings

    root = tmp_path_factory.mktemp("fuzz-store")
    return Settings(store_dir=root / "store", cache_dir=tmp_path_factory.getbasetemp() / "papers-cache")


@settings(FUZZ, max_examples=30)
@given(jsonl_file())
def test_fuzz_ingest_counts(fuzz_store, drawn):
    """The readers' accounting holds through ingest: added + updated + unchanged = the papers
    read, skipped = the records reported, and every paper read is in the store afterwards."""
    from test_failures import cheap_embed

    from assistant.ingest import ingest
    from assistant.store import Store

    lines, (end, encoding, gz, final_end), good, bad, records = drawn
    folder = Path(tempfile.mkdtemp(dir=fuzz_store.store_dir.parent))
    path = write(folder, "p.jsonl", lines, end, encoding, gz, final_end)
    read = read_papers([path])
    report = ingest(fuzz_store, [path], embed=cheap_embed)
    assert report.added + report.updated + report.unchanged == len(read.papers)
    assert (report.skipped, report.reported) == (len(bad), len(bad))
    states = Store.open(fuzz_store).paper_states()
    assert all(states[p.paper_id].complete for p in read.papers)


# --------------------------------------------------------------------------- seeds kept

def test_seed_first_line_opening_an_array(tmp_path):
    """A first line that opens a JSON array makes the file one problem (kept apart above)."""
    path = tmp_path / "p.jsonl"
    path.write_text('[{"title": "A", "abstract": "B"},\n{"title": "C", "abstract": "D"}]\n')
    result = read_papers([path])
    assert [str(p) for p in result.problems] == [f"{path}:1: a JSON array; write one JSON object a line"]


def test_seed_nested_authors_are_not_printed(tmp_path):
    """Authors nested ~900 deep parsed fine but recursed when turned into text."""
    path = tmp_path / "p.jsonl"
    path.write_text('{"title": "T", "abstract": "A", "authors": ' + "[" * 900 + "]" * 900 + "}\n")
    paper, = read_papers([path]).papers
    assert paper.authors == ()


def test_seed_csv_quote_swallowing_rows(tmp_path):
    """A stray opening quote made csv read the next rows as one title: named, not swallowed."""
    path = tmp_path / "p.csv"
    path.write_text('title,abstract\nA,one\n"C,three\nD,four\nE",five\nF,six\n')
    result = read_papers([path])
    assert [p.title for p in result.papers] == ["A", "F"]
    assert [str(p) for p in result.problems] == [
        f"{path}:3: title runs over several lines (lines 3-5 read as one record: check the quotes "
        "on line 3); check the quoting"]


def test_seed_lone_surrogate_in_a_filter(bundled_store):
    """Found by test_fuzz_query_path: `--category` with a byte that is not UTF-8 reached Chroma's
    `where` as a lone surrogate ("Invalid where clause")."""
    from assistant.answer import Assistant
    from assistant.types import Filters

    assert Assistant(bundled_store).search("\x00", k=1, filters=Filters(category="\ud800")) == []


def test_seed_ris_bad_line_is_reported_once(tmp_path):
    """Found by test_fuzz_any_bytes_in_any_reader: an undecodable line outside a RIS record was
    reported twice (not UTF-8, then text outside a record)."""
    path = tmp_path / "p.ris"
    path.write_bytes(b"\x80\n\x80")
    assert [p.line for p in read_papers([path]).problems] == [1, 2]


def test_seed_bib_cut_gz_is_not_pruned_and_named(tmp_path):
    """A cut .bib.gz was one problem ("cannot read") that left --prune free to delete."""
    import gzip as gz

    path = tmp_path / "lib.bib.gz"
    path.write_bytes(gz.compress(b"@article{a, title={T}, abstract={A}}\n" * 50)[:60])
    stream = PaperStream([path])
    assert list(stream) == [] and not stream.complete
    assert [str(p).split(": ")[1] for p in stream.problems.shown] == ["cannot read"]


def test_seed_nul_heavy_utf8_is_not_utf16(tmp_path):
    path = tmp_path / "p.txt"
    path.write_bytes(b"\x00" * 64 + b" A title\n" + b"An abstract " * 30 + b"\n")
    result = read_papers([path])
    assert result.records == 1 and result.problems == []
