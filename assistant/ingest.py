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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .assets import ensure_tiktoken
from .chunking import chunk_paper, paper_fingerprint
from .config import Settings
from .corpus import PaperStream, bundled_paths
from .integrity import repair_vectors
from .reconcile import StoredPapers
from .retrieval import BM25Index
from .store import Store, chunk_metadata
from .types import Chunk, Paper, Problem
from .writer import WriterLock

GROUP_CHUNKS = 64  # chunks per embed+upsert step: ~3 s of work on 2 cores, the most a stop loses

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
        stored = StoredPapers(store, run.states, run.aliases)
        for paper in papers:
            run.add(stored.resolve(paper))
        run.flush()
        aborted = "; ".join(papers.incomplete) if prune and not papers.complete else None
        gone = sorted(run.unseen) if prune and aborted is None else []
        if gone:
            if not run.bumped:
                store.bump_generation()
            store.delete_chunks(store.chunk_ids_of(gone))
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
        papers=len(run.states) + run.added - len(gone),
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
        self._group: list[tuple[Paper, str, list[Chunk]]] = []
        self._size = 0
        # An endpoint gets a batch per request in flight (4 x 32 = 128 chunks by default): one
        # group of 64 would keep only 2 of its embed_concurrency requests busy.
        self.group_chunks = (max(GROUP_CHUNKS, settings.embed_batch_size * settings.embed_concurrency)
                             if settings.uses_embed_endpoint else GROUP_CHUNKS)
        self.aliases: dict[str, str] = {}  # identities stored papers have besides their ids
        self.states = store.paper_states(self.aliases)
        if any(st.present < st.n_chunks for st in self.states.values()):
            self._repair()  # a stopped ingest's partial paper, or chunks that lost their vector
        self.unseen = set(self.states)  # papers not in the input: what --prune would delete

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
        if self.repaired:
            self.states = self.store.paper_states()

    def _check_lock(self) -> None:
        if self.lock is not None:
            self.lock.check()

    def add(self, paper: Paper) -> None:
        s = self.settings
        self.seen += 1
        self.unseen.discard(paper.paper_id)
        fp = paper_fingerprint(paper, s.chunk_size, s.chunk_overlap)
        state = self.states.get(paper.paper_id)
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
        self._group.append((paper, fp, chunks))
        self._size += len(chunks)
        if self._size >= self.group_chunks:
            self.flush()

    def flush(self) -> None:
        """Embed and upsert the group (each paper whole inside it), then report progress.

        A failed embedding (EmbeddingError) raises before the upsert: nothing of the group is
        stored, so no chunk is without its vector and the next ingest embeds the group again."""
        if not self._group:
            return
        part = [c for _, _, chunks in self._group for c in chunks]
        t0 = time.perf_counter()
        vectors = self.embed([c.embed_text for c in part])
        self.embed_seconds += time.perf_counter() - t0
        metas = [chunk_metadata(c, paper, fp) for paper, fp, chunks in self._group for c in chunks]
        self._check_lock()
        self.store.upsert(part, vectors, metas)
        _drop_stale(self.store, self._group, self.states)
        self.written += len(part)
        self._group, self._size = [], 0
        if self.progress:
            self.progress(self.seen, self.total)


def _drop_stale(store: Store, group: list[tuple[Paper, str, list[Chunk]]], states) -> None:
    """Delete chunk ids a changed paper had before but no longer has (it got shorter)."""
    stale = []
    for paper, _, chunks in group:
        state = states.get(paper.paper_id)
        if state is not None:
            stale += [f"{paper.paper_id}#{i}" for i in range(len(chunks), state.last_position + 1)]
    if stale:
        store.delete_chunks(stale)
