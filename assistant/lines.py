"""The lines of one paper file, decoded one at a time, and whether the file changed while read.

A line that is not UTF-8 costs that line only (a Problem); a file saved as UTF-16 or UTF-32
with a byte-order mark is read as such; lines may end in LF, CRLF or CR alone (old Mac exports). A file that cannot be read further (a truncated .gz, an I/O error) raises
`Unreadable` with the line where reading stopped, so the caller knows the file was not read
whole: `papers ingest --prune` must not delete what it could not read.
"""

from __future__ import annotations

import codecs
import gzip
import io
import os
import re
import zlib
from collections.abc import Iterator
from pathlib import Path

from .types import Problem

_HEAD = 4096  # bytes looked at to tell the encoding and the line ends
# UTF-32's little-endian mark starts with UTF-16's: test it first.
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_EOL = re.compile(rb"\r\n?|\n")


class Unreadable(Exception):
    """The file could not be read past `problem.line` (truncated, corrupt or gone)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def decoded_lines(path: Path, display: str, problems) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text) without the line end; bad lines become Problems."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    number = 0
    try:
        with opener(path, "rb") as raw:
            head = raw.peek(_HEAD)[:_HEAD]
            encoding = next((enc for bom, enc in _BOMS if head.startswith(bom)), None)
            if encoding:
                text = io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline=None)
                for number, line in enumerate(text, start=1):
                    yield number, line.rstrip("\n")
                return
            if _looks_utf16(head):
                reason = "looks like UTF-16 without a byte-order mark: save it as UTF-8"
                raise Unreadable(Problem(display, 1, reason))
            for number, data in enumerate(_lines(raw), start=1):
                try:
                    # utf-8-sig on line 1 drops the BOM that spreadsheet exports add
                    line = data.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError as err:
                    reason = f"not valid UTF-8 (byte {err.start + 1} of the line)"
                    problems.append(Problem(display, number, reason))
                    continue
                yield number, line
    except (OSError, EOFError, zlib.error) as err:  # truncated or corrupt .gz, unreadable file
        raise Unreadable(Problem(display, number + 1, f"cannot read further: {_one_line(err)}")) from None


def _looks_utf16(head: bytes) -> bool:
    """ASCII text saved as UTF-16 without its mark: NUL in most odd (or most even) bytes and
    hardly any in the others. A run of NULs in UTF-8 text fills both, so it does not count."""
    if len(head) < 8:
        return False
    half = len(head) // 2
    even, odd = head[0::2].count(0), head[1::2].count(0)
    return max(even, odd) > half * 0.4 and min(even, odd) < half * 0.05


def _lines(raw) -> Iterator[bytes]:
    """Lines ended by LF, CRLF or CR alone (old Mac exports; a CR inside an LF file too: no
    record format here allows one inside a line). Read a line at a time as the file object
    gives them, so a truncated .gz still yields every whole line before the cut."""
    for data in raw:
        if b"\r" not in data:
            yield data[:-1] if data.endswith(b"\n") else data
            continue
        parts = _EOL.split(data)
        if parts[-1] == b"":
            parts.pop()
        yield from parts


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


# --------------------------------------------------------------------------- change detection

Stamp = tuple[int, int, int, int]  # size, mtime_ns, inode, device


def stamp(path: Path) -> Stamp | None:
    """What says a file is the same file with the same bytes (None: it is gone)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


def change(before: Stamp | None, after: Stamp | None) -> str | None:
    """Why a file is not the one read at first (None: unchanged)."""
    if before == after:
        return None
    if after is None:
        return "vanished while it was read"
    if before is None:
        return "appeared while it was read"
    if after[2:] != before[2:]:
        return "was replaced while it was read"
    if after[0] < before[0]:
        return f"shrank while it was read ({before[0]} -> {after[0]} bytes)"
    if after[0] > before[0]:
        return f"grew while it was read ({before[0]} -> {after[0]} bytes)"
    return "was rewritten while it was read (its modification time changed)"
