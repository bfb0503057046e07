"""Refresh a saved BM25 index from what changed in the store, not from every chunk.

Why: a client of a Chroma server keeps its BM25 index in its cache, keyed to the collection's
generation. Before, any change (an ingest of 1,000 papers into 100,000 chunks) made every client
download all N chunks again and tokenize them: ~1 min at 100,000 chunks (benchmarks/README.md,
section 5c). Now:

- every chunk carries the revision it was written at (metadata `rev`, Store.upsert), and the
  revision is bumped with the generation (Store.bump_generation);
- the index records the collection's id and the revision it was built at (meta.json, read before
  any chunk: `bm25.store_state`);
- a refresh fetches the chunks written at that revision or later (`Store.chunks_since`: `>=`,
  so a chunk written by an ingest that was running while the index was built is fetched again),
  finds deleted chunks by the count (and only when the count disagrees, by every id: ~40 bytes a
  chunk), and rebuilds the bm25s arrays from the saved term ids (`Builder.save_terms`) plus the
  changed chunks' terms. The names table (NAMES_STATE_FILE) loses the changed papers' old
  contributions and gains their new ones. Nothing unchanged is downloaded or tokenized again.

`update` returns False (the caller then builds the whole index, as before) when the index was
saved by older code (no terms or state), the collection is another one (a rebuild swapped in), the
generation changed but the revision did not (a writer running older code, which stamps no `rev`),
or more than half the chunks changed (a full build costs no more).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .bm25 import PAGE, Builder, store_state, swap_in, write_parts
from .chunk_table import ChunkTable, TableWriter
from .types import Chunk


def update(store, folder: Path) -> bool:
    """Bring the index saved in `folder` up to the store's state; False where it cannot."""
    from .retrieval import NAMES_STATE_FILE, NameTable

    try:
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("collection") != store.collection_id or "revision" not in meta:
            return False
        if store.revision <= meta["revision"]:  # changed without a new revision: older writer
            return False
        old = ChunkTable.load(folder)
        vocab, flat, lengths = Builder.load_terms(folder)
        if meta["chunks"] != len(old) or len(lengths) != len(old):
            return False
        state_file = folder / NAMES_STATE_FILE
        names = NameTable.load(state_file) if state_file.exists() else None
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return False
    generation, state = store.generation, store_state(store)  # before any chunk is read
    limit = max(len(old) // 2, 1000)
    changed: dict[str, Chunk] = {}
    for page in store.chunks_since(int(meta["revision"])):
        changed.update((c.chunk_id, c) for c in page)
        if len(changed) > limit:
            return False
    row = {old.chunk_id(i): i for i in range(len(old))}
    drop = {row[cid] for cid in changed if cid in row}
    if store.count() != len(old) + sum(cid not in row for cid in changed):
        # Chunks were deleted (or written without `rev`): compare the ids.
        on_server = set(store.chunk_ids())
        drop |= {i for cid, i in row.items() if cid not in on_server}
        unknown = [cid for cid in on_server if cid not in row and cid not in changed]
        changed.update((c.chunk_id, c) for c in store.chunks_by_id(unknown))
    keep = np.ones(len(old), dtype=bool)
    keep[list(drop)] = False
    fresh = sorted(changed.values(), key=lambda c: (c.paper_id, c.position))
    affected = {c.paper_id for c in fresh} | {old.paper_id(old.paper_of(i)) for i in drop}

    def fill(tmp: Path) -> None:
        table = TableWriter()
        with open(tmp / "chunks.jsonl", "wb") as fh:
            for i in np.flatnonzero(keep).tolist():  # kept records copied, not encoded again
                table.copy(fh, old.line(i), old[i])
            table.write(fh, fresh)
        builder = Builder.spilling(vocab, tmp / "terms.spill")
        try:
            _add_kept(builder, flat, lengths, keep)
            for i in range(0, len(fresh), PAGE):
                builder.add([c.embed_text for c in fresh[i : i + PAGE]])
            retriever, df = builder.finish()
            if names is not None:
                _update_names(names, affected, keep, old, fresh)
                names.write(tmp)
            table.save(tmp)
            builder.save_terms(tmp)
        finally:
            builder.close()
        write_parts(tmp, retriever, df, generation, int(keep.sum()) + len(fresh), **state)

    swap_in(folder, fill)
    return True


def _add_kept(builder: Builder, flat: np.ndarray, lengths: np.ndarray, keep: np.ndarray) -> None:
    """The kept chunks' saved term ids, PAGE chunks at a time (never all of them copied at once)."""
    ends = np.cumsum(lengths)
    for a in range(0, len(lengths), PAGE):
        b = min(a + PAGE, len(lengths))
        start = int(ends[a - 1]) if a else 0
        part = np.asarray(flat[start : int(ends[b - 1])])
        builder.add_ids(part[np.repeat(keep[a:b], lengths[a:b])], lengths[a:b][keep[a:b]])


def _update_names(names, affected: set[str], keep, old: ChunkTable, fresh: list[Chunk]) -> None:
    """Each affected paper's old contribution out, its chunks as they are now in."""
    now: dict[str, list[Chunk]] = {}
    for c in fresh:
        now.setdefault(c.paper_id, []).append(c)
    for pid in affected:
        j = old.paper_number(pid)
        if j is None:
            was, kept = [], []
        else:
            rows = old.paper_indices(j)
            was = [old[i] for i in rows]
            kept = [old[i] for i in rows if keep[i]]
        if was:
            names.remove(pid, was)
        chunks = sorted(kept + now.get(pid, []), key=lambda c: c.position)
        if chunks:
            names.add(pid, chunks)
