"""The BM25 index's chunks on disk, not in Python: a columnar table beside chunks.jsonl.

Why: loading chunks.jsonl into Chunk objects cost every searching process ~3.5 KB a chunk
(~0.7 GB at 200,000 chunks) and a Python `matches` call per chunk for each filtered search.
The table holds, per chunk, the byte offset of its line in chunks.jsonl, its paper's number
(papers numbered in order of first appearance) and its year; per category and per source the
sorted chunk numbers that carry it (CSR: `*_ptr` + `*_idx`); per paper its chunk numbers and its
id (ids sorted for a binary search). ~40 bytes a chunk, memory-mapped at load: a search reads
only the records of the chunks it returns (`table[i]` seeks to the offset), and a filter is a
few numpy operations (`mask`). Figures: benchmarks/README.md, section 5b.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from .bm25 import chunk_of, chunk_record
from .types import Chunk, Filters

_DECODER = json.JSONDecoder()
NO_YEAR = np.iinfo(np.int64).min  # a chunk without a year: refused by any year bound, as in matches()
_LIMIT = 2**62  # a year bound beyond it is clamped (an int64 comparison must not overflow)
ARRAYS = ("offsets", "paper", "year", "cat_ptr", "cat_idx", "src_ptr", "src_idx",
          "pap_ptr", "pap_idx", "pid_off", "pid_blob", "pid_sorted")


def _key(paper_id: str) -> bytes:
    return paper_id.encode("utf-8", "surrogatepass")


def _csr(groups: dict[str, array]) -> tuple[np.ndarray, np.ndarray]:
    ptr = np.zeros(len(groups) + 1, dtype=np.int64)
    np.cumsum([len(v) for v in groups.values()], out=ptr[1:])
    idx = np.concatenate([np.frombuffer(v, dtype=np.int32) for v in groups.values()]) if groups else []
    return ptr, np.asarray(idx, dtype=np.int32)


class TableWriter:
    """Columns gathered while chunks.jsonl is written, one chunk at a time (`write`)."""

    def __init__(self) -> None:
        self.offsets = array("q", [0])
        self.paper = array("i")
        self.year = array("q")
        self.papers: dict[str, int] = {}
        self.cats: dict[str, array] = {}
        self.srcs: dict[str, array] = {}

    def add(self, c: Chunk, nbytes: int = 0) -> None:
        i = len(self.paper)
        self.offsets.append(self.offsets[-1] + nbytes)
        self.paper.append(self.papers.setdefault(c.paper_id, len(self.papers)))
        self.year.append(NO_YEAR if c.year is None else max(min(c.year, _LIMIT), -_LIMIT))
        for name in c.categories:
            self.cats.setdefault(name, array("i")).append(i)
        for name in c.sources:
            self.srcs.setdefault(name, array("i")).append(i)

    def copy(self, fh, line: bytes, c: Chunk) -> None:
        """A record kept as it was written (`ChunkTable.line`), with its chunk's columns."""
        fh.write(line)
        self.add(c, len(line))

    def write(self, fh, chunks) -> None:
        """Chunks as chunks.jsonl lines to the binary file `fh`, each one's columns noted."""
        for c in chunks:
            line = (json.dumps(chunk_record(c), ensure_ascii=False) + "\n").encode("utf-8")
            fh.write(line)
            self.add(c, len(line))

    def columns(self) -> tuple[dict[str, np.ndarray], dict]:
        paper = np.frombuffer(self.paper, dtype=np.int32)
        n_papers = len(self.papers)
        keys = [_key(p) for p in self.papers]
        pid_off = np.zeros(n_papers + 1, dtype=np.int64)
        np.cumsum([len(k) for k in keys], out=pid_off[1:])
        pap_ptr = np.zeros(n_papers + 1, dtype=np.int64)
        np.cumsum(np.bincount(paper, minlength=n_papers), out=pap_ptr[1:])
        cat_ptr, cat_idx = _csr(self.cats)
        src_ptr, src_idx = _csr(self.srcs)
        cols = {
            "offsets": np.frombuffer(self.offsets, dtype=np.int64), "paper": paper,
            "year": np.frombuffer(self.year, dtype=np.int64),
            "cat_ptr": cat_ptr, "cat_idx": cat_idx, "src_ptr": src_ptr, "src_idx": src_idx,
            "pap_ptr": pap_ptr, "pap_idx": np.argsort(paper, kind="stable").astype(np.int32),
            "pid_off": pid_off, "pid_blob": np.frombuffer(b"".join(keys), dtype=np.uint8),
            "pid_sorted": np.array(sorted(range(n_papers), key=keys.__getitem__), dtype=np.int32),
        }
        meta = {"chunks": len(paper), "papers": n_papers, "categories": list(self.cats),
                "sources": list(self.srcs), "bytes": int(self.offsets[-1])}
        return cols, meta

    def save(self, folder: Path) -> None:
        """The table's files into `folder`/table; table.json last (load checks it first)."""
        cols, meta = self.columns()
        (folder / "table").mkdir()
        for name, arr in cols.items():
            np.save(folder / "table" / f"{name}.npy", arr)
        (folder / "table" / "table.json").write_text(json.dumps(meta))  # ASCII: any name survives


class ChunkTable(Sequence[Chunk]):
    """The chunks by number: `len`, `table[i]` (one record read), iteration (one at a time),
    `mask(filters)`, and the papers (`paper_number`, `paper_id`, `paper_indices`)."""

    def __init__(self, cols: dict[str, np.ndarray], meta: dict, fetch) -> None:
        self._c = cols
        self._n = meta["chunks"]
        self.n_papers = meta["papers"]
        self._cats = {name: j for j, name in enumerate(meta["categories"])}
        self._srcs = {name: j for j, name in enumerate(meta["sources"])}
        self._fetch = fetch

    @classmethod
    def from_chunks(cls, chunks: list[Chunk]) -> "ChunkTable":
        """An index built in memory: the same columns, records from the list."""
        w = TableWriter()
        for c in chunks:
            w.add(c)
        return cls(*w.columns(), chunks.__getitem__)

    @classmethod
    def load(cls, folder: Path) -> "ChunkTable":
        """The table beside `folder`/chunks.jsonl, memory-mapped; ValueError/OSError when it is
        missing (an index saved before it existed), cut short or does not fit chunks.jsonl."""
        meta = json.loads((folder / "table" / "table.json").read_text())
        c = {name: np.load(folder / "table" / f"{name}.npy", mmap_mode="r") for name in ARRAYS}
        n, p = meta["chunks"], meta["papers"]
        sizes = {"offsets": n + 1, "paper": n, "year": n, "pap_idx": n, "pap_ptr": p + 1,
                 "pid_off": p + 1, "pid_sorted": p, "cat_ptr": len(meta["categories"]) + 1,
                 "src_ptr": len(meta["sources"]) + 1}
        if any(c[k].ndim != 1 or len(c[k]) != size for k, size in sizes.items()):
            raise ValueError("table arrays do not match table.json")
        ends = {"cat_idx": c["cat_ptr"][-1], "src_idx": c["src_ptr"][-1], "pid_blob": c["pid_off"][-1]}
        if any(len(c[k]) != end for k, end in ends.items()) or c["pap_ptr"][-1] != n:
            raise ValueError("table arrays do not match table.json")
        size = (folder / "chunks.jsonl").stat().st_size
        if c["offsets"][-1] != size or meta["bytes"] != size:
            raise ValueError("chunks.jsonl does not match its table")
        # Mapped, not opened per read: a save swapped in later deletes this folder, and a
        # mapping keeps the old file readable for this process.
        text = np.memmap(folder / "chunks.jsonl", dtype=np.uint8, mode="r") if size else b""
        offsets = c["offsets"]

        def fetch(i: int) -> Chunk:
            return chunk_of(json.loads(bytes(text[offsets[i]:offsets[i + 1]])))

        table = cls(c, meta, fetch)
        table.line = lambda i: bytes(text[offsets[i]:offsets[i + 1]])
        return table

    def line(self, i: int) -> bytes:
        """Chunk i's record as chunks.jsonl holds it (a loaded table only)."""
        raise TypeError("an index built in memory has no chunks.jsonl")

    def chunk_id(self, i: int) -> str:
        """Chunk i's id, decoded alone from the start of its record ({"id": ..., ...})."""
        line = self.line(i).decode("utf-8", "surrogatepass")
        if line.startswith('{"id": '):
            return _DECODER.raw_decode(line, 7)[0]
        return json.loads(line)["id"]

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i) -> Chunk:
        i = int(i)
        if not -self._n <= i < self._n:
            raise IndexError(i)
        return self._fetch(i % self._n)

    def __iter__(self) -> Iterator[Chunk]:
        return (self._fetch(i) for i in range(self._n))

    def mask(self, filters: Filters | None) -> np.ndarray:
        """matches(table[i], filters) for every i, as a bool array."""
        keep = np.ones(self._n, dtype=bool)
        if filters is None:
            return keep
        year = self._c["year"]
        for bound, ok in ((filters.year_min, np.greater_equal), (filters.year_max, np.less_equal)):
            if bound is not None:
                keep &= (year != NO_YEAR) & ok(year, max(min(bound, _LIMIT), -_LIMIT))
        for name, names, kind in ((filters.category, self._cats, "cat"), (filters.source, self._srcs, "src")):
            if name:
                member = np.zeros(self._n, dtype=bool)
                j = names.get(name)
                if j is not None:
                    ptr = self._c[f"{kind}_ptr"]
                    member[self._c[f"{kind}_idx"][ptr[j]:ptr[j + 1]]] = True
                keep &= member
        return keep

    def paper_id(self, j: int) -> str:
        off = self._c["pid_off"]
        return bytes(self._c["pid_blob"][off[j]:off[j + 1]]).decode("utf-8", "surrogatepass")

    def paper_number(self, paper_id: str) -> int | None:
        """Binary search of the sorted ids: ~19 steps at 500,000 papers. Through memoryviews of
        the mapped arrays (a Python int per read): 825 lookups at 1M chunks take 6.5 ms warm,
        against 40 ms with numpy scalar reads."""
        key, (order, off, blob) = _key(paper_id), self._views
        lo, hi = 0, self.n_papers
        while lo < hi:
            mid = (lo + hi) // 2
            j = order[mid]
            if bytes(blob[off[j]:off[j + 1]]) < key:
                lo = mid + 1
            else:
                hi = mid
        if lo < self.n_papers:
            j = order[lo]
            if bytes(blob[off[j]:off[j + 1]]) == key:
                return j
        return None

    @cached_property
    def _views(self) -> tuple[memoryview, memoryview, memoryview]:
        """(pid_sorted, pid_off, pid_blob) as memoryviews of the mapped arrays (no copy)."""
        c = self._c
        return (memoryview(np.ascontiguousarray(c["pid_sorted"])), memoryview(np.ascontiguousarray(c["pid_off"])),
                memoryview(np.ascontiguousarray(c["pid_blob"])).toreadonly())

    def first_chunk(self, j: int) -> int:
        """The first chunk number of paper j."""
        return int(self._c["pap_idx"][self._c["pap_ptr"][j]])

    def paper_of(self, i: int) -> int:
        """The paper number of chunk i."""
        return int(self._c["paper"][i])

    def paper_indices(self, j: int) -> list[int]:
        """The paper's chunk numbers, ascending (the order the chunks were stored in)."""
        ptr = self._c["pap_ptr"]
        return self._c["pap_idx"][ptr[j]:ptr[j + 1]].tolist()


class PaperChunks(Mapping[str, list[Chunk]]):
    """paper_id -> its chunks in stored order, papers in order of first appearance: the dict
    BM25Index.paper_chunks once was, read from the table on demand."""

    def __init__(self, table: ChunkTable) -> None:
        self._t = table

    def __getitem__(self, paper_id: str) -> list[Chunk]:
        j = self._t.paper_number(paper_id) if isinstance(paper_id, str) else None
        if j is None:
            raise KeyError(paper_id)
        return [self._t[i] for i in self._t.paper_indices(j)]

    def __iter__(self) -> Iterator[str]:
        return (self._t.paper_id(j) for j in range(self._t.n_papers))

    def __len__(self) -> int:
        return self._t.n_papers

    def items(self):  # one paper's chunks at a time, without a lookup by id
        return ((self._t.paper_id(j), [self._t[i] for i in self._t.paper_indices(j)])
                for j in range(self._t.n_papers))
