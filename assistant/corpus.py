"""Read papers (title + abstract) from page dumps, JSON Lines, CSV, the arXiv snapshot, and the
BibTeX and RIS files reference managers export (assistant/references.py).

The readers, one per format, are in formats.py (and references.py): each a generator over the
lines of one file, so a multi-GB arXiv metadata snapshot streams. `read_papers` merges
everything in memory (small inputs, tests); `PaperStream` (ingest) holds 16 bytes a record plus
the records that may merge (see its docstring).
Bad records never stop a read: they become `Problem`s (`file:line: reason`) next to the good
papers, and `strict=True` turns any of them into one `CorpusError`.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from assistant import identity
from assistant.errors import CorpusError
from assistant.formats import _READERS, _Record, _title_key, paper_id_for
from assistant.lines import Unreadable, change, stamp
from assistant.text import normalize_title
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
