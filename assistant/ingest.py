"""Read papers, chunk them, embed what changed, write to the store, refresh the BM25 index.

Resumability: papers are embedded and upserted in small groups (~64 chunks), each paper whole
inside one group. A paper is "unchanged" when all its chunks are stored under its current
fingerprint, so an ingest stopped by Ctrl-C or killed between groups loses at most one group, and
the next run embeds only what is missing. Old chunks of a changed paper are deleted after its new
ones are written, so the store never lacks a paper that was in it.

A paper already stored under another id (the same DOI or arXiv id, read from another file in an
earlier ingest) is updated under that id: see reconcile.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from .assets import ensure_tiktoken
from .chunking import chunk_paper, paper_fingerprint
from .config import Settings
from .corpus import PaperStream, bundled_paths
from .integrity import repair_vectors
from .reconcile import StoredPapers
from .retrieval import BM25Index
from .store import PaperState, Store, chunk_metadata
from .types import Chunk, Paper, Problem
from .writer import WriterLock

GROUP_CHUNKS = 64  # chunks per embed+upsert step: ~3 s of work on 2 cores, the most a stop loses
# Papers read before their stored states are looked up (StoredPapers.look_up): one query of up
# to ~4 ids a paper (its id, arXiv id, DOI, title hash) instead of one a paper; a batch waits
# for nothing (reading 256 papers takes ~10 ms) and holds 256 states.
LOOKUP_PAPERS = 256

Progress = Callable[[int, int], None]  # (papers read and stored so far, papers in the input)


@dataclass(frozen=True)
class IngestReport:
    added: int
    updated: int
    unchanged: int
    skipped: int  # records read but not stored: malformed, or their file changed mid-read
    pruned: int
    chunks_written: int
    papers: int  # papers in the store afterwards
    chunks: int  # chunks in the store afterwards
    seconds: float
    embed_seconds: float
    problems: tuple[Problem, ...] = ()  # the first 100
    reported: int = 0  # problems in all (one may stand for many records)
    repaired: int = 0  # chunks whose lost vector was written again
    prune_aborted: str | None = None  # why --prune deleted nothing (a source not read whole)


def ingest(
    settings: Settings,
    paths: Sequence[Path] | None = None,
    *,
    prune: bool = False,
    strict: bool = False,
    rebuild: bool = False,
    progress: Progress | None = None,
    embed=None,
    notice: Callable[[str], None] | None = None,
) -> IngestReport:
    """Bring the store in line with `paths` (the bundled corpus when None).

    Papers stream from the reader through chunking, embedding and upserts in groups of
    ~GROUP_CHUNKS chunks, so memory does not grow with the input and progress starts with the
    first group. `rebuild` writes a staging collection and swaps it in only when it is complete:
    an error or Ctrl-C midway leaves the old store as it was. Writing holds the store's writer
    lock (writer.py): a second ingest waits, and `notice` gets the lines saying so.
    `prune` deletes papers only when every source was read whole and unchanged.
    """
    start = time.perf_counter()
    papers = PaperStream(paths or bundled_paths(), strict=strict)  # strict: raises before writing
    ensure_tiktoken(settings.cache_dir)
    with WriterLock(settings, notice) as lock:
        store = Store.open_staging(settings) if rebuild else Store.open(settings, create=True)
        # The bundled collection's vectors ship with the package; --rebuild embeds for real.
        run = _Run(settings, store, progress, embed, total=papers.papers, shipped=not rebuild, lock=lock)
        run.seen_ids = set() if prune else None
        stored = StoredPapers(store)
        for batch in _batches(papers, LOOKUP_PAPERS):
            stored.look_up(batch)
            for paper in map(stored.resolve, batch):
                run.add(paper, stored.state(paper.paper_id))
        run.flush()
        aborted = "; ".join(papers.incomplete) if prune and not papers.complete else None
        gone, gone_chunks = _unseen(store, run.seen_ids) if prune and aborted is None else ([], [])
        if gone:
            if not run.bumped:
                store.bump_generation()
            store.delete_chunks(gone_chunks)
        if run.todo or gone:
            store.bump_generation()  # again: a search during the run may have indexed a partial store
        if rebuild:
            store = store.swap_into(settings)
        store.record_ingest(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        BM25Index.refresh(store)  # rebuilt page by page and saved when the generation changed
    return IngestReport(
        added=run.added,
        updated=run.todo - run.added,
        unchanged=run.seen - run.todo,
        skipped=papers.problems.count,
        pruned=len(gone),
        chunks_written=run.written,
        papers=run.stored + run.added - len(gone),
        chunks=store.count(),
        seconds=time.perf_counter() - start,
        embed_seconds=run.embed_seconds,
        problems=tuple(papers.problems.shown),
        reported=papers.problems.problems,
        repaired=run.repaired,
        prune_aborted=aborted,
    )


class _Run:
    """The write side of one ingest: groups changed papers, embeds and upserts each group."""

    def __init__(self, settings: Settings, store: Store, progress: Progress | None, embed,
                 total: int, shipped: bool = True, lock: WriterLock | None = None) -> None:
        self.settings, self.store, self.lock = settings, store, lock
        self.shipped = shipped
        self.progress, self.embed, self.total = progress, embed, total
        self.seen = self.todo = self.added = self.written = self.repaired = 0
        self.embed_seconds = 0.0
        self.bumped = False
        self._group: list[tuple[Paper, str, list[Chunk], PaperState | None]] = []
        self._size = 0
        # An endpoint gets a batch per request in flight (4 x 32 = 128 chunks by default): one
        # group of 64 would keep only 2 of its embed_concurrency requests busy.
        self.group_chunks = (max(GROUP_CHUNKS, settings.embed_batch_size * settings.embed_concurrency)
                             if settings.uses_embed_endpoint else GROUP_CHUNKS)
        self.seen_ids: set[str] | None = None  # with --prune: the ids written or unchanged
        # One pass over the store's chunks holding no paper's state once it is whole (the
        # states of the papers read are looked up a batch at a time: StoredPapers).
        survey = store.survey()
        self.stored = survey.papers  # papers in the store before this run
        if survey.no_vector:
            self._repair()

    def _embedder(self):
        if self.embed is None:
            from .embeddings import make_embedding_function

            self.embed = make_embedding_function(self.settings, shipped=self.shipped)
        return self.embed

    def _repair(self) -> None:
        """Write again the vectors of stored chunks that lost theirs (integrity.repair_vectors).

        Any ingest repairs them, whatever files it reads (the chunks may come from others);
        their papers are then complete and counted unchanged.
        """
        self.repaired = repair_vectors(self.store, lambda texts: self._embedder()(texts), self._check_lock)

    def _check_lock(self) -> None:
        if self.lock is not None:
            self.lock.check()

    def add(self, paper: Paper, state: PaperState | None) -> None:
        """Write `paper` (resolved) unless its stored `state` says it is stored whole as it is."""
        s = self.settings
        self.seen += 1
        if self.seen_ids is not None:
            self.seen_ids.add(paper.paper_id)
        fp = paper_fingerprint(paper, s.chunk_size, s.chunk_overlap)
        if state is not None and state.fingerprint == fp and state.complete:
            return
        if not self.bumped:
            # Before the first write: a run stopped midway must not leave the BM25 index cached
            # beside the store looking current (it is keyed by the generation).
            self.store.bump_generation()
            self.bumped = True
            self._embedder()
            if self.progress:
                self.progress(self.seen - 1, self.total)
        self.todo += 1
        self.added += state is None
        chunks = chunk_paper(paper, s.chunk_size, s.chunk_overlap)
        self._group.append((paper, fp, chunks, state))
        self._size += len(chunks)
        if self._size >= self.group_chunks:
            self.flush()

    def flush(self) -> None:
        """Embed and upsert the group (each paper whole inside it), then report progress.

        A failed embedding (EmbeddingError) raises before the upsert: nothing of the group is
        stored, so no chunk is without its vector and the next ingest embeds the group again."""
        if not self._group:
            return
        part = [c for _, _, chunks, _ in self._group for c in chunks]
        t0 = time.perf_counter()
        vectors = self.embed([c.embed_text for c in part])
        self.embed_seconds += time.perf_counter() - t0
        metas = [chunk_metadata(c, paper, fp) for paper, fp, chunks, _ in self._group for c in chunks]
        self._check_lock()
        self.store.upsert(part, vectors, metas)
        _drop_stale(self.store, self._group)
        self.written += len(part)
        self._group, self._size = [], 0
        if self.progress:
            self.progress(self.seen, self.total)


def _drop_stale(store: Store, group: list[tuple[Paper, str, list[Chunk], PaperState | None]]) -> None:
    """Delete chunk ids a changed paper had before but no longer has (it got shorter)."""
    stale = []
    for paper, _, chunks, state in group:
        if state is not None:
            stale += [f"{paper.paper_id}#{i}" for i in range(len(chunks), state.last_position + 1)]
    if stale:
        store.delete_chunks(stale)


def _batches(papers: Iterable[Paper], size: int) -> Iterator[list[Paper]]:
    it = iter(papers)
    while batch := list(islice(it, size)):
        yield batch


def _unseen(store: Store, seen: set[str]) -> tuple[list[str], list[str]]:
    """(papers, their chunk ids) stored but not in `seen`: what --prune deletes. Streams the
    chunk ids (no metadata); holds the ids read (`seen`) and those to delete."""
    chunks = [cid for cid in store.chunk_ids() if cid.rsplit("#", 1)[0] not in seen]
    return sorted({cid.rsplit("#", 1)[0] for cid in chunks}), chunks
