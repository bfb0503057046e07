"""The BM25 builder: the index bm25s would build, written page by page without the collection."""

from __future__ import annotations

import json
from collections import Counter

import bm25s
import numpy as np
import pytest

from assistant import bm25
from assistant.retrieval import NAMES_FILE, NAMES_STATE_FILE, BM25Index
from assistant.store import Store

QUERIES = ["stability gap continual pre-training", "protein folding", "retrieval augmented generation",
           "sparse attention long context", "tabular data", "the of and"]


def test_builder_scores_equal_bm25s_own_index(bundled_store):
    """Same scores, same order, for the bundled chunks: vocabulary ids never reach a result."""
    chunks = list(Store.open(bundled_store).iter_chunks())
    reference = bm25s.BM25()
    tokens = bm25.tokenize([c.embed_text for c in chunks], True)
    reference.index(tokens, show_progress=False)
    built = BM25Index.build(chunks, "g")
    words = {i: w for w, i in tokens.vocab.items()}
    assert built._df == dict(Counter(words[i] for doc in tokens.ids for i in set(doc)))
    for query in QUERIES + [c.title for c in chunks[::50]]:
        terms = bm25.tokenize([query], False)
        if not terms[0]:
            continue
        want = reference.retrieve(terms, k=40, show_progress=False, n_threads=1)
        got = built._retriever.retrieve(terms, k=40, show_progress=False, n_threads=1)
        assert np.array_equal(want[0], got[0]) and np.array_equal(want[1], got[1]), query


def test_page_builder_arrays_are_bm25s_own_bit_for_bit(bundled_store, tmp_path):
    """bm25_build's arrays, from pages of 37 chunks spilled to a file, equal build_index_from_ids's
    over the same term ids: same scores (float32 bits), same documents, same column pointers."""
    texts = [c.embed_text for c in Store.open(bundled_store).iter_chunks()]
    builder = bm25.Builder(spill=tmp_path / "terms.spill")
    for i in range(0, len(texts), 37):
        builder.add(texts[i : i + 37])
    built, _ = builder.finish()
    docs = [flat[a:b].tolist() for flat, lengths in builder.pages()
            for a, b in zip(np.r_[0, np.cumsum(lengths)[:-1]], np.cumsum(lengths))]
    reference = bm25s.BM25().build_index_from_ids(
        unique_token_ids=list(builder.vocab.values()), corpus_token_ids=docs, show_progress=False)
    assert len(docs) == len(texts) and built.scores["num_docs"] == reference["num_docs"]
    for key in ("data", "indices", "indptr"):
        assert np.array_equal(built.scores[key], reference[key]), key
    assert built.scores["data"].dtype == reference["data"].dtype == np.float32
    builder.close()
    assert not (tmp_path / "terms.spill").exists()


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
    assert streamed is not None and list(streamed.chunks) == list(whole.chunks) and streamed._df == whole._df
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


def test_ingest_saves_the_name_table_search_would_build(bundled_store, tmp_path, monkeypatch):
    """refresh (ingest's path) writes the names table from pages of 7 chunks; load serves it as is."""
    import shutil

    settings = bundled_store.model_copy(update={"store_dir": tmp_path / "store"})
    shutil.copytree(bundled_store.store_dir, settings.store_dir)
    shutil.rmtree(settings.store_dir / "bm25")
    monkeypatch.setattr(bm25, "PAGE", 7)
    store = Store.open(settings)
    BM25Index.refresh(store)
    assert (settings.store_dir / "bm25" / NAMES_FILE).exists()
    loaded = BM25Index.load(settings.store_dir / "bm25", store.generation)
    assert "names" in loaded.__dict__  # served from the file, not recomputed
    built = BM25Index.build(list(store.iter_chunks()), store.generation)
    assert loaded.names == built.names and len(built.names) > 100
    assert loaded.named_papers("How does TabPFN classify tables?", 3)


def test_an_index_saved_under_the_older_names_rule_gets_the_table_again(bundled_store, tmp_path):
    """An index whose names table was saved by older code (names.json only) is not served that
    table: the first search computes it under today's rule and saves it beside the index."""
    import shutil

    settings = bundled_store.model_copy(update={"store_dir": tmp_path / "store"})
    shutil.copytree(bundled_store.store_dir, settings.store_dir)
    folder = settings.store_dir / "bm25"
    old = {"cifar-10": [[["CIFAR-10", "t:selfie"]], 3]}  # the older rule's list entry
    (folder / NAMES_FILE).rename(folder / "names.json")
    (folder / "names.json").write_text(json.dumps(old))
    (folder / NAMES_STATE_FILE).unlink()
    store = Store.open(settings)
    index = BM25Index.for_store(store)
    built = BM25Index.build(list(store.iter_chunks()), store.generation)
    assert index.names == built.names and "cifar-10" not in index.names
    assert json.loads((folder / NAMES_FILE).read_text()).keys() == built.names.keys()
    assert (folder / NAMES_STATE_FILE).exists()  # what the next refresh updates


def test_paper_groups_give_each_paper_whole_and_notice_mixed_versions():
    from assistant.types import Chunk

    def chunk(pid, i, n):
        return Chunk(f"{pid}#{i}", pid, "T", "x", i, n)

    groups = bm25.PaperGroups()
    got = list(groups.feed([chunk("a", 0, 2), chunk("b", 0, 1), chunk("a", 1, 2), chunk("c", 0, 2)]))
    assert [(p, len(cs)) for p, cs in got] == [("b", 1), ("a", 2)]
    assert [(p, len(cs)) for p, cs in groups.finish()] == [("c", 1)] and groups.exact
    list(groups.feed([chunk("a", 2, 3)]))  # a chunk of a paper already given out
    assert not groups.exact
