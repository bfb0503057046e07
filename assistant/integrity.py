"""`papers check`: is every stored chunk findable, by its vector and by BM25? And the repair.

Damage this finds (each seen, see docs/reliability.md): chunks whose vector is missing from
Chroma's index (two writers at once, before the writer lock), papers with some chunks missing
(an ingest stopped between groups), and a BM25 index that does not match the store (deleted,
cut short, or saved for an older generation). The repair writes the lost vectors again from the
chunks' stored text, under the writer lock, and rebuilds the BM25 index: no `--rebuild`, no
source files needed. `papers ingest` runs the same repair before it writes.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from . import bm25
from .config import Settings
from .errors import StoreDamagedError
from .store import Store, describe_location

REPAIR_GROUP = 64  # chunks embedded and written at once (as ingest's groups)


@dataclass(frozen=True)
class CheckReport:
    where: str
    papers: int
    chunks: int
    no_vector: tuple[str, ...] = ()  # chunk ids whose vector is missing
    no_vector_papers: int = 0
    incomplete_papers: int = 0  # papers with chunks missing (a stopped ingest)
    bm25_problem: str | None = None
    damage: list[str] = field(default_factory=list)
    bm25_older: bool = False  # saved by an older version: rebuilt by the next search, no damage

    @property
    def ok(self) -> bool:
        return not self.damage

    def line(self) -> str:
        """One line: what was checked, or what is wrong and what to do."""
        if self.ok:
            bm25_state = ("BM25 index saved by an older version (the next search rebuilds it)"
                          if self.bm25_older else f"BM25 index current ({self.chunks} chunks)")
            return (f"store {self.where}: {self.papers} papers, {self.chunks} chunks; every chunk "
                    f"has its vector; {bm25_state}")
        return (f"the store at {self.where} is damaged: {'; '.join(self.damage)}: repair it with "
                "`papers check --repair` (or any `papers ingest`)")


def check(settings: Settings) -> CheckReport:
    """Read every chunk with its vector and compare the BM25 index with the store (writes nothing)."""
    store = Store.open(settings)
    survey = store.survey()  # one pass, holding only the papers not yet seen whole
    lost = survey.no_vector
    chunks = store.count()
    lost_by_paper = Counter(cid.rsplit("#", 1)[0] for cid in lost)
    lost_papers = len(lost_by_paper)
    # `present` leaves out chunks without a vector: what is still short was never written.
    incomplete = sum(1 for pid, st in survey.unfinished.items()
                     if st.n_chunks < 0 or st.present + lost_by_paper[pid] < st.n_chunks)
    damage = []
    if lost:
        damage.append(f"{len(lost)} of {chunks} chunks ({lost_papers} papers) have no vector, so "
                      "dense search cannot find them")
    if incomplete:
        damage.append(f"{incomplete} papers miss some of their chunks (an ingest was stopped)")
    older = bm25.older_format(store.local_dir() / "bm25", store.generation)
    bm25_problem = None if older else _bm25_problem(store, chunks)
    if bm25_problem:
        damage.append(bm25_problem)
    return CheckReport(describe_location(settings), survey.papers, chunks, tuple(lost), lost_papers,
                       incomplete, bm25_problem, damage, older)


def _bm25_problem(store: Store, chunks: int) -> str | None:
    folder = store.local_dir() / "bm25"
    if not bm25.is_current(folder, store.generation):
        return "the BM25 index is missing, cut short or older than the store"
    saved = json.loads((folder / "meta.json").read_text())["chunks"]  # read by is_current
    if saved != chunks:
        return f"the BM25 index holds {saved} chunks, the store {chunks}"
    return None


def repair_vectors(store: Store, embed: Callable, before_write: Callable[[], None] | None = None) -> int:
    """Write again, from their stored text, the vectors of chunks that lost theirs; returns how many."""
    lost = store.chunks_without_vector()
    for i in range(0, len(lost), REPAIR_GROUP):
        part = lost[i : i + REPAIR_GROUP]
        vectors = embed([c.embed_text for c in part])
        if before_write is not None:
            before_write()
        store.restore_vectors(part, vectors)
    return len(lost)


def repair(settings: Settings, notice: Callable[[str], None] | None = None, embed=None) -> CheckReport:
    """`papers check --repair`: lost vectors written again and the BM25 index rebuilt, under the
    writer lock; returns the check afterwards (papers missing chunks need their source: ingest)."""
    from .assets import ensure_tiktoken
    from .retrieval import BM25Index
    from .writer import WriterLock

    ensure_tiktoken(settings.cache_dir)
    with WriterLock(settings, notice) as lock:
        store = Store.open(settings)
        if embed is None:
            from .embeddings import make_embedding_function

            embed = make_embedding_function(settings)
        repair_vectors(store, embed, lock.check)
        BM25Index.refresh(store)  # vectors do not change BM25; a missing or stale index is rebuilt
    return check(settings)


def raise_if_damaged(report: CheckReport) -> None:
    if not report.ok:
        raise StoreDamagedError(report.line())
