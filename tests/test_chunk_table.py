"""The chunk table: records read by offset, filters as numpy masks, a damaged table rebuilt."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from assistant import bm25
from assistant.chunk_table import ChunkTable
from assistant.retrieval import BM25Index, matches
from assistant.store import Store
from assistant.types import Chunk, Filters


def _chunks() -> list[Chunk]:
    """Papers whose chunks are not together, years missing, several categories and sources,
    and text JSON must escape."""
    out = []
    for i in range(40):
        pid = f"p{i % 13}" if i % 5 else f"doi:10.1/é{i % 7}"
        out.append(Chunk(chunk_id=f"c{i}", paper_id=pid, title=f"Title {pid}", text=f'text "{i}" ü\n{i}',
                         position=i % 3, n_chunks=3, year=None if i % 6 == 0 else 2015 + i % 9,
                         categories=("cs.LG", "stat.ML")[: i % 3], sources=(f"s{i % 4}.jsonl", "all.bib")[: 1 + i % 2]))
    return out


FILTERS = [None, Filters(), Filters(year_min=2019), Filters(year_max=2018), Filters(year_min=2017, year_max=2020),
           Filters(category="cs.LG"), Filters(category="stat.ML", year_min=2016), Filters(category="nope"),
           Filters(source="all.bib"), Filters(source="s2.jsonl", category="cs.LG"), Filters(category=""),
           Filters(year_min=10**30), Filters(year_max=-10**30), Filters(year_min=-10**30, year_max=10**30)]


@pytest.fixture
def saved(tmp_path):
    chunks = _chunks()
    BM25Index.build(chunks, "g").save(tmp_path / "bm25")
    return chunks, tmp_path / "bm25"


def test_records_are_read_by_offset(saved):
    chunks, folder = saved
    table = ChunkTable.load(folder)
    assert len(table) == len(chunks) and list(table) == chunks
    assert [table[i] for i in reversed(range(len(chunks)))] == chunks[::-1]
    assert table[np.int32(7)] == chunks[7] and table[-1] == chunks[-1]
    with pytest.raises(IndexError):
        table[len(chunks)]
    offsets = np.load(folder / "table" / "offsets.npy")
    assert offsets[-1] == (folder / "chunks.jsonl").stat().st_size


def test_paper_chunks_equal_grouping_the_list(saved):
    chunks, folder = saved
    grouped: dict[str, list[Chunk]] = {}
    for c in chunks:
        grouped.setdefault(c.paper_id, []).append(c)
    for index in (BM25Index.build(chunks, "g"), BM25Index.load(folder, "g")):
        pc = index.paper_chunks
        assert list(pc) == list(grouped) and dict(pc.items()) == grouped and len(pc) == len(grouped)
        assert pc.get("missing") is None and "p3" in pc and "p" not in pc
        assert index.names == BM25Index.build(chunks, "g").names


@pytest.mark.parametrize("f", FILTERS)
def test_mask_equals_matches(saved, f):
    chunks, folder = saved
    want = [matches(c, f) for c in chunks]
    for table in (ChunkTable.from_chunks(chunks), ChunkTable.load(folder)):
        assert table.mask(f).tolist() == want


@pytest.mark.parametrize("damage", ["no-table", "truncate-array", "empty-array", "garbage-json", "cut-jsonl"])
def test_a_damaged_or_old_table_is_rebuilt(bundled_store, tmp_path, damage):
    """An index saved before the table (no table/), or one cut short, is not loaded: rebuilt."""
    settings = bundled_store.model_copy(update={"store_dir": tmp_path / "store"})
    shutil.copytree(bundled_store.store_dir, settings.store_dir)
    store = Store.open(settings)
    folder = settings.store_dir / "bm25"
    BM25Index.refresh(store)
    assert bm25.is_current(folder, store.generation)
    table = folder / "table"
    if damage == "no-table":
        shutil.rmtree(table)
    elif damage == "truncate-array":
        data = (table / "offsets.npy").read_bytes()
        (table / "offsets.npy").write_bytes(data[: len(data) - 16])
    elif damage == "empty-array":
        (table / "year.npy").write_bytes(b"")
    elif damage == "garbage-json":
        (table / "table.json").write_text("{")
    else:
        data = (folder / "chunks.jsonl").read_bytes()
        (folder / "chunks.jsonl").write_bytes(data[:-10])
    assert BM25Index.load(folder, store.generation) is None
    assert not bm25.is_current(folder, store.generation)
    index = BM25Index.for_store(store)  # a search: rebuilt and saved
    assert len(index.chunks) == store.count()
    assert BM25Index.load(folder, store.generation) is not None
    shutil.rmtree(table)
    BM25Index.refresh(store)  # ingest's path: rebuilt too
    assert bm25.is_current(folder, store.generation)
    assert json.loads((table / "table.json").read_text())["chunks"] == store.count()


def test_loaded_search_equals_built(bundled_store):
    """The memory-mapped index returns the same chunks and scores as the one built in memory."""
    store = Store.open(bundled_store)
    loaded = BM25Index.for_store(store)
    built = BM25Index.build(list(store.iter_chunks()), store.generation)
    assert isinstance(loaded._retriever.scores["data"], np.memmap)
    for q in ["stability gap", "protein folding", "tabular data", "sparse attention long context"]:
        for f in (None, Filters(year_min=2023), Filters(category="cs.CL")):
            assert loaded.search(q, 40, f) == built.search(q, 40, f)


def test_papers_check_calls_an_index_from_before_the_table_an_upgrade_not_damage(bundled_store, tmp_path):
    from assistant.integrity import check

    settings = bundled_store.model_copy(update={"store_dir": tmp_path / "store"})
    shutil.copytree(bundled_store.store_dir, settings.store_dir)
    store = Store.open(settings)
    BM25Index.refresh(store)
    shutil.rmtree(settings.store_dir / "bm25" / "table")  # as the code before the table saved it
    report = check(settings)
    assert report.ok and report.bm25_older
    assert report.line().endswith("BM25 index saved by an older version (the next search rebuilds it)")
    (settings.store_dir / "bm25" / "chunks.jsonl").write_bytes(b"")  # cut short as well: damage
    (settings.store_dir / "bm25" / "meta.json").write_text("{}")
    assert not check(settings).ok
