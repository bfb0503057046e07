"""Read papers, chunk them, embed what changed, write to the store, refresh the BM25 index.

Resumability: papers are embedded and upserted in small groups (~64 chunks), each paper whole
inside one group. A paper is "unchanged" when all its chunks are stored under its current
fingerprint, so an ingest stopped by Ctrl-C or killed between groups loses at most one group, and
the next run embeds only what is missing. Old chunks of a changed paper are deleted after its new
ones are written, so the store never lacks a paper that was in it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .assets import ensure_tiktoken
from .chunking import chunk_paper, paper_fingerprint
from .config import Settings
from .corpus import bundled_paths, read_papers
from .retrieval import BM25Index
from .store import Store, chunk_metadata
from .types import Chunk, Paper, Problem

GROUP_CHUNKS = 64  # chunks per embed+upsert step: ~3 s of work on 2 cores, the most a stop loses

Progress = Callable[[int, int], None]  # (papers written so far, papers to write)


@dataclass(frozen=True)
class IngestReport:
    added: int
    updated: int
    unchanged: int
    skipped: int  # malformed records reported as problems
    pruned: int
    chunks_written: int
    papers: int  # papers in the store afterwards
    chunks: int  # chunks in the store afterwards
    seconds: float
    embed_seconds: float
    problems: tuple[Problem, ...] = ()


def _groups(papers: Sequence[Paper], chunks: dict[str, list[Chunk]]):
    group: list[Paper] = []
    size = 0
    for paper in papers:
        group.append(paper)
        size += len(chunks[paper.paper_id])
        if size >= GROUP_CHUNKS:
            yield group
            group, size = [], 0
    if group:
        yield group


def ingest(
    settings: Settings,
    paths: Sequence[Path] | None = None,
    *,
    prune: bool = False,
    strict: bool = False,
    rebuild: bool = False,
    progress: Progress | None = None,
    embed=None,
) -> IngestReport:
    """Bring the store in line with `paths` (the bundled corpus when None)."""
    start = time.perf_counter()
    result = read_papers(paths or bundled_paths(), strict=strict)  # strict: raises before writing
    ensure_tiktoken(settings.cache_dir)
    if rebuild:
        Store.delete(settings)
    store = Store.open(settings, create=True)
    states = store.paper_states()

    todo: list[Paper] = []
    fingerprints: dict[str, str] = {}
    for paper in result.papers:
        fp = fingerprints[paper.paper_id] = paper_fingerprint(
            paper, settings.chunk_size, settings.chunk_overlap)
        state = states.get(paper.paper_id)
        if state is None or state.fingerprint != fp or not state.complete:
            todo.append(paper)
    added = sum(1 for p in todo if p.paper_id not in states)
    keep = {p.paper_id for p in result.papers}
    gone = [pid for pid in states if pid not in keep] if prune else []
    if todo or gone:
        # Before the first write: a run stopped midway must not leave the BM25 index cached
        # beside the store looking current (it is keyed by the generation).
        store.bump_generation()

    embed_seconds, written = 0.0, 0
    if todo:
        if embed is None:
            from .embeddings import make_embedding_function

            # the bundled collection's vectors ship with the package; --rebuild embeds for real
            embed = make_embedding_function(settings, shipped=not rebuild)
        chunks = {p.paper_id: chunk_paper(p, settings.chunk_size, settings.chunk_overlap) for p in todo}
        done = 0
        if progress:
            progress(0, len(todo))
        for group in _groups(todo, chunks):
            part = [c for p in group for c in chunks[p.paper_id]]
            t0 = time.perf_counter()
            vectors = embed([c.embed_text for c in part])
            embed_seconds += time.perf_counter() - t0
            by_id = {p.paper_id: p for p in group}
            metas = [chunk_metadata(c, by_id[c.paper_id], fingerprints[c.paper_id]) for c in part]
            store.upsert(part, vectors, metas)
            _drop_stale(store, group, chunks, states)
            written += len(part)
            done += len(group)
            if progress:
                progress(done, len(todo))

    pruned = 0
    if gone:
        store.delete_chunks(store.chunk_ids_of(gone))
        pruned = len(gone)

    if todo or pruned:
        store.bump_generation()  # again: a search during the run may have indexed a partial store
    BM25Index.for_store(store)  # rebuilt and saved when the generation changed (or missing)
    return IngestReport(
        added=added,
        updated=len(todo) - added,
        unchanged=len(result.papers) - len(todo),
        skipped=len(result.problems),
        pruned=pruned,
        chunks_written=written,
        papers=len(states.keys() | fingerprints.keys()) - pruned,
        chunks=store.count(),
        seconds=time.perf_counter() - start,
        embed_seconds=embed_seconds,
        problems=tuple(result.problems),
    )


def _drop_stale(store: Store, group: list[Paper], chunks: dict[str, list[Chunk]], states) -> None:
    """Delete chunk ids a changed paper had before but no longer has (it got shorter)."""
    stale = []
    for paper in group:
        state = states.get(paper.paper_id)
        if state is not None:
            n_new = len(chunks[paper.paper_id])
            stale += [f"{paper.paper_id}#{i}" for i in range(n_new, state.last_position + 1)]
    if stale:
        store.delete_chunks(stale)
