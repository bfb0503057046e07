"""A client's BM25 index refreshed from what changed (bm25_update.py), embedded and `chroma run`."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_chroma_server import LOOPBACK, chroma_url  # noqa: F401 (the fixture: a real chroma run)

from assistant import bm25_update
from assistant.config import Settings
from assistant.retrieval import BM25Index
from assistant.store import Store, chunk_metadata
from assistant.types import Chunk, Filters, Paper

WORDS = ("penguin huddle winter radar ice segmentation sourdough yeast compiler tensor "
         "microcontroller songbird dialect island transformer attention retrieval benchmark").split()


@pytest.fixture(params=["embedded", "chroma run"])
def settings(request, tmp_path, monkeypatch):
    cache = Path(os.environ["PAPERS_CACHE_DIR"])
    if request.param == "embedded":
        return Settings(store_dir=tmp_path / "store", cache_dir=cache, chroma_url=None)
    for name, value in LOOPBACK.items():
        monkeypatch.setenv(name, value)
    url = request.getfixturevalue("chroma_url")
    # The index goes to the client's cache: one per test, so tests share no cached index.
    return Settings(chroma_url=url, store_dir=tmp_path / "no-local-store", cache_dir=tmp_path / "cache",
                    collection=f"refresh-{tmp_path.name[-24:].replace('_', '-')}".rstrip("-"))


def paper(i: int, words: int = 30, seed: int = 0, name: str = "") -> tuple[Paper, list[Chunk]]:
    rng = np.random.default_rng(i * 100 + seed)
    texts = [" ".join(rng.choice(WORDS, size=words)) + (f" {name} ({name})" if name and j == 0 else "")
             for j in range(2)]
    p = Paper(paper_id=f"p{i:03d}", title=f"Paper {i} about {WORDS[i % len(WORDS)]}",
              abstract=" ".join(texts), year=2015 + i % 10, categories=(f"cs.{'CL' if i % 2 else 'LG'}",),
              sources=("s.jsonl",))
    return p, [Chunk(chunk_id=f"{p.paper_id}#{j}", paper_id=p.paper_id, title=p.title, text=t, position=j,
                     n_chunks=2, year=p.year, categories=p.categories, sources=p.sources)
               for j, t in enumerate(texts)]


def write(store: Store, papers) -> None:
    chunks, metas = [], []
    for p, cs in papers:
        chunks += cs
        metas += [chunk_metadata(c, p, f"fp{hash(c.text) & 0xffff}") for c in cs]
    rng = np.random.default_rng(len(chunks))
    vectors = rng.standard_normal((len(chunks), 384)).astype(np.float32)
    store.upsert(chunks, vectors / np.linalg.norm(vectors, axis=1, keepdims=True), metas)


def snapshot(index: BM25Index) -> dict:
    """What a search sees of an index, independent of chunk order."""
    out = {"ids": sorted(c.chunk_id for c in index.chunks), "df": index._df, "names": index.names}
    for q, f in (("penguin huddle", None), ("compiler tensor XNet", Filters(year_min=2019)),
                 ("songbird island", Filters(category="cs.CL"))):
        out[q] = sorted((c.chunk_id, round(s, 5)) for c, s in index.search(q, 50, f))
    return out


def full_build(store: Store, tmp_path: Path) -> dict:
    folder = tmp_path / "reference-bm25"
    BM25Index._write(store, folder)
    return snapshot(BM25Index.load(folder, store.generation))


def fetches(monkeypatch) -> list[int]:
    """Chunks the refresh reads from the store; reading every chunk fails the test."""
    seen: list[int] = []
    since = Store.chunks_since

    def counted(self, revision):
        for page in since(self, revision):
            seen.append(len(page))
            yield page

    def whole(self, page=1000):
        raise AssertionError("the refresh read every chunk")

    monkeypatch.setattr(Store, "chunks_since", counted)
    monkeypatch.setattr(Store, "iter_chunk_pages", whole)
    return seen


def test_refresh_reads_only_what_changed(settings, tmp_path, monkeypatch):
    store = Store.open(settings, create=True)
    write(store, [paper(i, name="XNet" if i == 3 else "") for i in range(30)])
    store.bump_generation()
    index = BM25Index.for_store(store)
    assert len(index.chunks) == 60 and "xnet" in index.names
    folder = store.local_dir() / "bm25"
    assert json.loads((folder / "meta.json").read_text())["revision"] == store.revision

    # What an ingest does: bump, add 2 papers, change 1 (same ids, new text, and the name it
    # defined moves to another paper), drop 1, bump again.
    store.bump_generation()
    write(store, [paper(30), paper(31, name="XNet"), paper(3, seed=9)])
    store.delete_chunks(["p005#0", "p005#1"])
    store.bump_generation()

    reader = Store.open(settings)
    seen = fetches(monkeypatch)
    refreshed = BM25Index.for_store(reader)
    assert sum(seen) == 6  # the 3 written papers' chunks, not 62
    monkeypatch.undo()
    assert len(refreshed.chunks) == 62
    assert snapshot(refreshed) == full_build(reader, tmp_path)
    assert {p for _, p in refreshed.names["xnet"][0]} == {"p031"}

    # Unchanged since: loaded as it is, nothing fetched.
    seen = fetches(monkeypatch)
    assert len(BM25Index.for_store(Store.open(settings)).chunks) == 62 and not seen


def test_deletions_only_and_ingest_refresh(settings, tmp_path, monkeypatch):
    store = Store.open(settings, create=True)
    write(store, [paper(i) for i in range(10)])
    store.bump_generation()
    BM25Index.refresh(store)  # ingest's path saves what a refresh needs too
    store.bump_generation()
    store.delete_chunks(["p001#0", "p001#1", "p002#1"])
    store.bump_generation()
    seen = fetches(monkeypatch)
    BM25Index.refresh(Store.open(settings))
    monkeypatch.undo()
    assert sum(seen) == 0
    reader = Store.open(settings)
    index = BM25Index.for_store(reader)
    assert len(index.chunks) == 17
    assert snapshot(index) == full_build(reader, tmp_path)


def test_falls_back_to_a_full_build(settings, tmp_path, monkeypatch):
    store = Store.open(settings, create=True)
    write(store, [paper(i) for i in range(6)])
    store.bump_generation()
    BM25Index.for_store(store)
    folder = store.local_dir() / "bm25"

    # A writer running older code bumps the generation but not the revision, and stamps no rev.
    store._set_metadata(generation="older-writer")
    assert not bm25_update.update(Store.open(settings), folder)

    # An index saved by older code: no term ids, no collection state.
    store.bump_generation()
    (folder / "terms.npy").unlink()
    assert not bm25_update.update(Store.open(settings), folder)
    index = BM25Index.for_store(Store.open(settings))
    assert len(index.chunks) == 12 and (folder / "terms.npy").exists()

    # Another collection under the same name (a rebuild swapped in).
    Store.delete(settings)
    other = Store.open(settings, create=True)
    write(other, [paper(i, seed=5) for i in range(2)])
    other.bump_generation()
    assert not bm25_update.update(Store.open(settings), folder)
    index = BM25Index.for_store(Store.open(settings))
    assert sorted(c.chunk_id for c in index.chunks) == ["p000#0", "p000#1", "p001#0", "p001#1"]


def test_a_chunk_written_during_the_build_is_fetched_again(settings, tmp_path, monkeypatch):
    """The index records the revision read before its chunks: a chunk an ingest writes while the
    index is built carries that revision, and the next refresh (`>=`) fetches it."""
    store = Store.open(settings, create=True)
    write(store, [paper(i) for i in range(4)])
    store.bump_generation()  # the ingest's first bump; it is still writing
    BM25Index.for_store(Store.open(settings))
    write(store, [paper(4), replace_text(paper(0))])
    store.bump_generation()  # the ingest's last bump
    reader = Store.open(settings)
    index = BM25Index.for_store(reader)
    assert snapshot(index) == full_build(reader, tmp_path)


def replace_text(p):
    pp, cs = p
    cs = [replace(c, text=c.text + " appendix") for c in cs]
    return replace(pp, abstract=pp.abstract + " appendix"), cs
