"""Match the papers an ingest reads with the same papers already in the store.

Within one read, `corpus` merges records that are one paper. Across ingests the store is the
other side: a .bib entry ingested today may be a paper the arXiv snapshot brought last week.
A paper read now is the stored paper with
1. the same id; else
2. one of its identities (arXiv id, DOI) as the stored paper's id or as an identity the stored
   paper has besides its id; else
3. when it has an identity, the same title as a stored paper that has none (a page-dump paper:
   "an arXiv id beats a title hash", as within one read). Two papers whose titles match but
   whose ids differ stay two.

A matched paper keeps the stored id, so its chunks are updated in place. When the store holds it
from other files as well, the stored record is kept (its text: the first reading wins, as within
one read), gaps are filled from the new reading and the sources are joined; when it holds it
from these files only, the new reading replaces it (an edited abstract is an update).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from .corpus import merge_papers, paper_id_for
from .identity import identities
from .store import PaperState, Store
from .types import Paper


class StoredPapers:
    """The store's papers as an ingest sees them, looked up a batch of read papers at a time:
    ids, states and identities besides the id. Never every stored paper (issue 15)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.states: dict[str, PaperState] = {}  # the current batch's candidates that are stored
        self._aliases: dict[str, str] | None = None  # read when a paper first needs it
        self._claimed: set[str] = set()  # stored ids a paper of this run was matched with
        # States, as looked up before this run wrote them, of stored papers that a paper with
        # another id was written into: a later batch's lookup would see the rewritten paper.
        self._before: dict[str, PaperState] = {}

    def look_up(self, papers: Iterable[Paper]) -> None:
        """Read the states of the stored papers that `papers` (the next batch) may match."""
        wanted: set[str] = set()
        for paper in papers:
            idents = identities(paper)
            wanted.update((paper.paper_id, *idents))
            if idents:
                wanted.add(paper_id_for(paper.title))
        # No vectors read (~1/3 of a lookup's time): the ingest's survey found the chunks
        # without one and repaired them before the first lookup, and it writes none without.
        found = self.store.paper_states(wanted - self._before.keys(), vectors=False)
        self.states = {**found, **self._before}

    def state(self, paper_id: str) -> PaperState | None:
        """The stored state of a paper of the batch (as resolved), None when not stored."""
        return self.states.get(paper_id)

    def resolve(self, paper: Paper) -> Paper:
        """`paper` as it should be stored: under the stored paper's id, merged where needed."""
        stored_id = self._match(paper)
        if stored_id is None or (stored_id in self._claimed and stored_id != paper.paper_id):
            # A second paper of this run for the same stored one (two DOIs under one title
            # both met a page-dump paper): the first one joined it; this one stays apart.
            return paper
        self._claimed.add(stored_id)
        if stored_id != paper.paper_id:
            self._before.setdefault(stored_id, self.states[stored_id])
        stored = set(filter(None, self.states[stored_id].sources.split("\n")))
        if stored <= set(paper.sources):  # a re-reading of the files that stored it
            return paper if stored_id == paper.paper_id else replace(paper, paper_id=stored_id)
        old = self.store.paper(stored_id)
        if old is None:  # its first chunk is missing (a stopped ingest): write it whole again
            return replace(paper, paper_id=stored_id)
        return merge_papers(old, paper, keep_id=True)

    def _match(self, paper: Paper) -> str | None:
        if paper.paper_id in self.states:
            return paper.paper_id
        idents = identities(paper)
        for ident in idents:
            if ident in self.states:
                return ident
            if (target := self._alias(ident)) is not None:
                return target
        if idents:
            title_id = paper_id_for(paper.title)
            if title_id in self.states and not self.states[title_id].aliases:
                return title_id  # a stored title-hash paper with no identity of its own
        return None

    def _alias(self, ident: str) -> str | None:
        """The stored paper that has `ident` besides its id (its state then looked up too)."""
        if self._aliases is None:
            self._aliases = self.store.aliases()
        target = self._aliases.get(ident)
        if target is not None and target not in self.states:
            self.states.update(self.store.paper_states([target], vectors=False))
        return target if target in self.states else None
