"""The BM25 side's text handling and index files: terms, a page-by-page builder, swap-in saves.

Memory (why a builder and not `bm25s.BM25.index` over a list of chunks): an ingest rebuilds the
index from the whole store. Holding every Chunk and bm25s's Python token lists costs ~7 KB a
chunk, and reading the store 5,000 chunks a page makes Chroma build ~160 MB of results at once;
at 200,000 arXiv abstracts that alone is over 1.5 GB. `write_for_store` instead reads the store
PAGE chunks at a time, writes each chunk's record straight to `chunks.jsonl` and its term ids
(int32) to a spill file. The scores are then computed a page at a time by
`bm25_build.index_arrays`: the arrays `bm25s.BM25.index` would build, bit for bit (vocabulary ids
may be numbered differently; they never reach a result). See benchmarks/README.md, sections 5
and 5g, for the figures.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from .types import Chunk

PAGE = 1000  # chunks read from the store at once (Chroma's results for 1,000: ~30 MB)

_HYPHENATED = re.compile(r"\b(\w+)-(\w+)\b")


def bm25_text(text: str) -> str:
    """Hyphenated words also count joined and split: "pre-training" matches "pretraining"."""
    return _HYPHENATED.sub(r"\1\2 \1 \2", text.lower())


def tokenize(texts: Sequence[str], return_ids: bool):
    """Stemmed, stop-word-free terms of each text (bm25s.Tokenized when `return_ids`)."""
    import bm25s
    import Stemmer

    return bm25s.tokenize(
        [bm25_text(t) for t in texts], stopwords="en", stemmer=Stemmer.Stemmer("english"),
        show_progress=False, return_ids=return_ids,
    )


def chunk_record(c: Chunk) -> dict:
    return {"id": c.chunk_id, "p": c.paper_id, "t": c.title, "x": c.text, "i": c.position,
            "n": c.n_chunks, "y": c.year, "c": list(c.categories), "s": list(c.sources)}


def chunk_of(r: dict) -> Chunk:
    return Chunk(chunk_id=r["id"], paper_id=r["p"], title=r["t"], text=r["x"], position=r["i"],
                 n_chunks=r["n"], year=r["y"], categories=tuple(r["c"]), sources=tuple(r["s"]))


class Builder:
    """Chunks' texts added a page at a time; `finish` gives the bm25s index and term frequencies.

        b = Builder(); b.add(["stability gap in pre-training", "gap"])
        retriever, df = b.finish()  # df: {"stabil": 1, "gap": 2, "pretrain": 1, "pre": 1, "train": 1}

    With `spill` (a file path), the term ids go to that file as they come (~4 bytes a term, 410
    MB at 1M synthetic chunks) and are read back a page at a time; without it they stay in
    memory (small builds). The index arrays are computed by `bm25_build.index_arrays`.
    """

    def __init__(self, spill: Path | None = None) -> None:
        self.vocab: dict[str, int] = {}  # stemmed term -> id
        self._pages: list[tuple[np.ndarray | None, np.ndarray]] = []  # (term ids or None, lengths)
        self._spill = spill
        self._fh = open(spill, "w+b") if spill is not None else None

    def add(self, texts: Sequence[str]) -> None:
        ids: list[int] = []
        lengths = []
        vocab = self.vocab
        for terms in tokenize(texts, False):
            ids += [vocab.setdefault(t, len(vocab)) for t in terms]
            lengths.append(len(terms))
        self.add_ids(np.array(ids, dtype=np.int32), np.array(lengths, dtype=np.int64))

    def add_ids(self, flat: np.ndarray, lengths: np.ndarray) -> None:
        """Chunks already tokenized with this builder's vocabulary (a saved index's terms)."""
        flat = np.asarray(flat, dtype=np.int32)
        if self._fh is not None:
            self._fh.write(flat.tobytes())
            flat = None
        self._pages.append((flat, np.asarray(lengths, dtype=np.int64)))

    def pages(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(term ids, terms per chunk) of each page added, in order, read back from the spill."""
        if self._fh is not None:
            self._fh.flush()
            self._fh.seek(0)
        for flat, lengths in self._pages:
            if flat is None:
                flat = np.fromfile(self._fh, dtype=np.int32, count=int(lengths.sum()))
            yield flat, lengths

    def __len__(self) -> int:
        return sum(len(lengths) for _, lengths in self._pages)

    def save_terms(self, folder: Path) -> None:
        """The term ids and vocabulary beside the index, so a refresh tokenizes only what changed
        (~0.3 KB a chunk; tokenizing costs ~0.1 ms a chunk, reading these back ~nothing)."""
        lengths = np.concatenate([n for _, n in self._pages]) if self._pages else np.zeros(0, np.int64)
        with open(folder / "terms.npy", "wb") as fh:
            np.lib.format.write_array_header_1_0(
                fh, {"descr": np.dtype(np.int32).str, "fortran_order": False,
                     "shape": (int(lengths.sum()),)})
            for flat, _ in self.pages():
                fh.write(flat.tobytes())
        np.save(folder / "lengths.npy", lengths)
        (folder / "vocab.json").write_text(json.dumps(self.vocab, ensure_ascii=False))

    def close(self) -> None:
        """Remove the spill file (the builder is spent)."""
        if self._fh is not None:
            self._fh.close()
            self._spill.unlink(missing_ok=True)
            self._fh = None

    @staticmethod
    def load_terms(folder: Path) -> tuple[dict[str, int], np.ndarray, np.ndarray]:
        """(the saved vocabulary, term ids memory-mapped, lengths); OSError/ValueError when they
        are missing or do not fit each other."""
        vocab = json.loads((folder / "vocab.json").read_text())
        flat = np.load(folder / "terms.npy", mmap_mode="r")  # read once, through the page cache
        lengths = np.load(folder / "lengths.npy")
        if flat.ndim != 1 or lengths.ndim != 1 or int(lengths.sum()) != len(flat):
            raise ValueError("terms do not fit their lengths")
        if len(flat) and int(flat.max()) >= len(vocab):
            raise ValueError("terms do not fit the vocabulary")
        return vocab, flat, lengths

    @classmethod
    def spilling(cls, vocab: dict[str, int], spill: Path) -> "Builder":
        """A builder that goes on numbering terms from `vocab`, its term ids spilled to `spill`."""
        b = cls(spill)
        b.vocab = dict(vocab)
        return b

    def finish(self):
        """(bm25s.BM25, {term: number of chunks containing it}), as `BM25.index` would build it."""
        import bm25s

        from .bm25_build import Params, index_arrays

        retriever = bm25s.BM25()
        if not len(self):
            return retriever, {}
        vocab = dict(self.vocab)
        data, indices, indptr = index_arrays(self.pages, len(vocab), Params.of(retriever))
        retriever.scores = {"data": data, "indices": indices, "indptr": indptr, "num_docs": len(self)}
        retriever.nonoccurrence_array = None  # as build_index_from_ids sets it for this method
        if "" not in vocab:  # what BM25.index adds to a Tokenized corpus's vocabulary
            vocab[""] = max(vocab.values()) + 1
        retriever.vocab_dict = vocab
        retriever.unique_token_ids_set = set(vocab.values())
        # A term's column holds one entry per chunk containing it: its length is the term's df.
        counts = np.diff(indptr)
        df = {term: int(counts[i]) for term, i in self.vocab.items() if counts[i]}
        return retriever, df


def swap_in(folder: Path, fill: Callable[[Path], None]) -> None:
    """Let `fill` write an index into a temporary folder beside `folder`, then swap it into place.

    A reader never sees a half-written index: it finds the old folder, the new one, or (for the
    instant between the two renames) none, and then builds its own from the store.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp = folder.with_name(f".{folder.name}.tmp-{tag}")
    old = folder.with_name(f".{folder.name}.old-{tag}")
    try:
        tmp.mkdir()
        fill(tmp)
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def write_parts(tmp: Path, retriever, df: dict[str, int], generation: str, n_chunks: int,
                **state) -> None:
    """The index's files besides chunks.jsonl; meta.json last (its chunk count is checked on load).
    `state`: what a refresh compares with the store (`collection`, `revision`: bm25_update.py)."""
    if n_chunks:
        retriever.save(str(tmp / "bm25"))
    (tmp / "df.json").write_text(json.dumps(df))
    (tmp / "meta.json").write_text(json.dumps({"generation": generation, "chunks": n_chunks, **state}))


def store_state(store) -> dict:
    """The collection's state an index is built from, read before any chunk is (a chunk written
    meanwhile carries this revision or a later one, so the next refresh fetches it)."""
    return {"collection": store.collection_id, "revision": store.revision}


def is_current(folder: Path, generation: str, chunks: int | None = None) -> bool:
    """Whether the saved index in `folder` is this generation's and whole (without loading it),
    and, given the store's chunk count, holds as many chunks. One saved before the chunk table
    (chunk_table.py) existed is not: it is rebuilt."""
    from .chunk_table import ChunkTable

    try:
        meta = json.loads((folder / "meta.json").read_text())
        with open(folder / "chunks.jsonl", "rb") as fh:
            lines = sum(1 for _ in fh)
        json.loads((folder / "df.json").read_text())
        return (meta["generation"] == generation and meta["chunks"] == lines
                and len(ChunkTable.load(folder)) == lines
                and (chunks is None or lines == chunks)
                and (lines == 0 or (folder / "bm25").is_dir()))
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return False


def older_format(folder: Path, generation: str) -> bool:
    """A whole index of this generation saved before the chunk table existed (an upgrade, not
    damage): the next search rebuilds it, page by page."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        return meta["generation"] == generation and not (folder / "table").exists()
    except (OSError, ValueError, KeyError, TypeError):
        return False


class PaperGroups:
    """Chunks in store order -> (paper_id, its chunks) as soon as a paper's n_chunks are seen.

    Holds only papers still incomplete (a paper's chunks are written together, so at most a
    page's worth). `exact` turns False if a paper's chunk comes after the paper was given out
    (mixed versions): the groups then differ from grouping the whole collection.
    """

    def __init__(self) -> None:
        self._open: dict[str, list[Chunk]] = {}
        self._done: set[str] = set()
        self.exact = True

    def feed(self, chunks: Sequence[Chunk]) -> Iterator[tuple[str, list[Chunk]]]:
        for c in chunks:
            if c.paper_id in self._done:
                self.exact = False
            group = self._open.setdefault(c.paper_id, [])
            group.append(c)
            if len(group) == c.n_chunks:
                self._done.add(c.paper_id)
                yield c.paper_id, self._open.pop(c.paper_id)

    def finish(self) -> Iterator[tuple[str, list[Chunk]]]:
        yield from self._open.items()
        self._open = {}


def write_for_store(store, folder: Path, on_paper: Callable[[str, list[Chunk]], None] | None = None,
                    extras: Callable[[Path, bool], None] | None = None) -> None:
    """Build the store's index page by page and save it to `folder` (ingest's path).

    Holds one page of chunks and every chunk's term ids, never the whole collection.
    `on_paper(paper_id, chunks)` sees each paper whole; `extras(tmp, exact)` adds files.
    """
    generation, state = store.generation, store_state(store)

    def fill(tmp: Path) -> None:
        from .chunk_table import TableWriter

        builder = Builder(spill=tmp / "terms.spill")
        try:
            groups, table, n = PaperGroups(), TableWriter(), 0
            with open(tmp / "chunks.jsonl", "wb") as fh:
                for page in store.iter_chunk_pages(PAGE):
                    builder.add([c.embed_text for c in page])
                    table.write(fh, page)
                    n += len(page)
                    for paper_id, chunks in groups.feed(page) if on_paper else ():
                        on_paper(paper_id, chunks)
            for paper_id, chunks in groups.finish() if on_paper else ():
                on_paper(paper_id, chunks)
            retriever, df = builder.finish()
            if extras is not None:
                extras(tmp, groups.exact)
            table.save(tmp)
            builder.save_terms(tmp)
        finally:
            builder.close()
        write_parts(tmp, retriever, df, generation, n, **state)

    swap_in(folder, fill)
