"""The BM25 builder: the index bm25s would build, written page by page without the collection."""

from __future__ import annotations

import json

import bm25s
import numpy as np
import pytest

from assistant import bm25
from assistant.retrieval import BM25Index
from assistant.store import Store

QUERIES = ["stability gap continual pre-training", "protein folding", "retrieval augmented generation",
           "sparse attention long context", "tabular data", "the of and"]


def test_builder_scores_equal_bm25s_own_index(bundled_store):
    """Same scores, same order, for the bundled chunks: vocabulary ids never reach a result."""
    chunks = list(Store.open(bundled_store).iter_chunks())
    reference = bm25s.BM25()
    reference.index(bm25.tokenize([c.embed_text for c in chunks], True), show_progress=False)
    built = BM25Index.build(chunks, "g")
    for query in QUERIES + [c.title for c in chunks[::50]]:
        terms = bm25.tokenize([query], False)
        if not terms[0]:
            continue
        want = reference.retrieve(terms, k=40, show_progress=False, n_threads=1)
        got = built._retriever.retrieve(terms, k=40, show_progress=False, n_threads=1)
        assert np.array_equal(want[0], got[0]) and np.array_equal(want[1], got[1]), query


def test_builder_counts_chunks_per_term():
    builder = bm25.Builder()
    builder.add(["stability gap in pre-training", "gap gap"])
    builder.add(["the words, and of these"])
    _, df = builder.finish()
    assert df == {"stabil": 1, "gap": 2, "pretrain": 1, "pre": 1, "train": 1, "word": 1}  # "the", "and", "of", "these": stop words


def test_page_by_page_index_equals_the_in_memory_one(bundled_store, tmp_path, monkeypatch):
    """Ingest's streamed index (here 7 chunks a page) loads as the one built from every chunk."""
    store = Store.open(bundled_store)
    monkeypatch.setattr(bm25, "PAGE", 7)
    folder = tmp_path / "bm25"
    bm25.write_for_store(store, folder)
    assert bm25.is_current(folder, store.generation)
    streamed = BM25Index.load(folder, store.generation)
    whole = BM25Index.build(list(store.iter_chunks()), store.generation)
    assert streamed is not None and streamed.chunks == whole.chunks and streamed._df == whole._df
    for query in QUERIES:
        assert streamed.search(query, 20) == whole.search(query, 20)


@pytest.mark.parametrize("damage", ["truncate", "generation", "no-df"])
def test_is_current_refuses_a_stale_or_partial_index(bundled_store, tmp_path, damage):
    store = Store.open(bundled_store)
    folder = tmp_path / "bm25"
    bm25.write_for_store(store, folder)
    if damage == "truncate":
        lines = (folder / "chunks.jsonl").read_text().splitlines(keepends=True)
        (folder / "chunks.jsonl").write_text("".join(lines[:-3]))
    elif damage == "generation":
        meta = json.loads((folder / "meta.json").read_text())
        (folder / "meta.json").write_text(json.dumps({**meta, "generation": "older"}))
    else:
        (folder / "df.json").unlink()
    assert not bm25.is_current(folder, store.generation)
