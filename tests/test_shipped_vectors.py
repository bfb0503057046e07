"""Shipped vectors: the bundled collection's first ingest runs no model; any mismatch embeds for real."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from assistant import embeddings
from assistant.config import Settings
from assistant.embeddings import (
    MANIFEST,
    SHIPPED_DIR,
    ShippedEmbedding,
    make_embedding_function,
    shipped_table,
    text_key,
)
from assistant.evaluation.vectors import corpus_chunk_texts
from assistant.ingest import ingest
from assistant.store import Store


def settings_for(store_dir: Path | None = None, **kw) -> Settings:
    return Settings(store_dir=store_dir or Path("unused"), cache_dir=Path(os.environ["PAPERS_CACHE_DIR"]),
                    **kw)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "papers-cache"  # the autouse env fixture's cache


@pytest.fixture(scope="module")
def table(cache_dir):
    found = shipped_table(Settings(cache_dir=cache_dir))
    assert found is not None, "no shipped vectors for the default settings: run scripts/ship_vectors.py"
    return found


@pytest.fixture(scope="module")
def chunk_texts(cache_dir):
    return corpus_chunk_texts(Settings(cache_dir=cache_dir))


def no_model(*_a, **_k):
    raise AssertionError("the embedding model was loaded")


def copy_shipped(tmp_path: Path) -> Path:
    folder = tmp_path / "vectors"
    shutil.copytree(SHIPPED_DIR, folder)
    return folder


def npz_of(folder: Path) -> Path:
    (entry,) = json.loads((folder / MANIFEST).read_text())["tables"]
    return folder / entry["file"]


# --------------------------------------------------------------------------- the shipped table


def test_table_covers_every_chunk_of_the_bundled_collection(table, chunk_texts):
    assert {text_key(t) for t in chunk_texts} == set(table)
    manifest = json.loads((SHIPPED_DIR / MANIFEST).read_text())
    assert [t["vectors"] for t in manifest["tables"]] == [len(table)]
    assert all(v.dtype == np.float32 and v.shape == (384,) for v in table.values())


def test_sample_of_shipped_vectors_equals_fresh_ones(table, chunk_texts):
    """20 chunks spread over the corpus, embedded now by the real model: max |diff| <= 1e-5."""
    sample = chunk_texts[:: max(1, len(chunk_texts) // 20)][:20]
    fresh = make_embedding_function(settings_for())(sample)
    assert len(sample) == 20
    diff = max(float(np.abs(np.asarray(f) - table[text_key(t)]).max()) for t, f in zip(sample, fresh))
    assert diff <= 1e-5


def test_first_ingest_stores_the_shipped_vectors_without_the_model(tmp_path, monkeypatch, table):
    monkeypatch.setattr(embeddings, "ensure_minilm", no_model)
    monkeypatch.setattr(embeddings, "_make_class", no_model)
    upserted = {}
    original = Store.upsert

    def spy(self, chunks, vectors, metas):
        upserted.update({c.embed_text: v for c, v in zip(chunks, vectors)})
        return original(self, chunks, vectors, metas)

    monkeypatch.setattr(Store, "upsert", spy)
    report = ingest(settings_for(tmp_path / "store"))
    assert report.chunks == report.chunks_written == len(upserted) == len(table)
    # ingest hands Chroma the exact floats the shipping ingest computed (Chroma then normalizes
    # them for its cosine space, moving the last bit, the same way for both: ship_vectors --check)
    assert all(np.array_equal(v, table[text_key(t)]) for t, v in upserted.items())
    got = Store.open(settings_for(tmp_path / "store"))._collection.get(include=["embeddings", "documents",
                                                                                "metadatas"])
    stored = {f"{m['title']}\n{d}": e for d, m, e in zip(got["documents"], got["metadatas"], got["embeddings"])}
    assert stored.keys() == upserted.keys()
    assert max(float(np.abs(np.asarray(stored[t]) - v).max()) for t, v in upserted.items()) < 1e-6


# --------------------------------------------------------------------------- falling back


def test_rebuild_embeds_for_real_and_a_plain_ingest_asks_for_shipped(tmp_path, monkeypatch):
    asked = []

    def spy(settings, *, shipped=False):
        asked.append(shipped)
        return lambda texts: [np.full(384, 384 ** -0.5, np.float32) for _ in texts]

    monkeypatch.setattr(embeddings, "make_embedding_function", spy)
    corpus = tmp_path / "papers.jsonl"
    corpus.write_text(json.dumps({"title": "A study", "abstract": "We study things. " * 5}) + "\n")
    settings = settings_for(tmp_path / "store")
    ingest(settings, [corpus])
    ingest(settings, [corpus], rebuild=True)
    assert asked == [True, False]


def test_other_chunking_or_batch_size_has_no_table():
    assert shipped_table(settings_for(chunk_size=64)) is None
    assert shipped_table(settings_for(chunk_overlap=0)) is None
    assert shipped_table(settings_for(embed_batch_size=8)) is None
    assert not isinstance(make_embedding_function(settings_for(chunk_size=64), shipped=True),
                          ShippedEmbedding)


def test_a_table_for_another_model_is_not_used(tmp_path):
    folder = copy_shipped(tmp_path)
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["tables"][0]["model_sha256"] = "0" * 64
    (folder / MANIFEST).write_text(json.dumps(manifest))
    assert shipped_table(settings_for(), folder) is None


@pytest.mark.parametrize("damage", ["missing-file", "missing-manifest", "bad-manifest",
                                    "flip-bytes", "truncate"])
def test_missing_or_corrupt_files_give_no_table(tmp_path, damage):
    folder = copy_shipped(tmp_path)
    assert shipped_table(settings_for(), folder) is not None
    path = npz_of(folder)
    if damage == "missing-file":
        path.unlink()
    elif damage == "missing-manifest":
        (folder / MANIFEST).unlink()
    elif damage == "bad-manifest":
        (folder / MANIFEST).write_text("{not json")
    elif damage == "flip-bytes":  # same size, a vector changed: only the sha256 can tell
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        path.write_bytes(path.read_bytes()[:1000])
    assert shipped_table(settings_for(), folder) is None


def test_a_call_with_an_unknown_text_embeds_the_whole_call_for_real(table, chunk_texts):
    made, calls = [], []

    def make_real():
        made.append(1)

        def real(texts):
            calls.append(list(texts))
            return [np.zeros(384, np.float32) for _ in texts]

        return real

    embed = ShippedEmbedding(table, make_real)
    known = chunk_texts[:3]
    out = embed(known)
    assert not made  # all known: the model is not even loaded
    assert all(np.array_equal(v, table[text_key(t)]) for t, v in zip(known, out))
    mixed = [known[0], "A text the table lacks"]
    out = embed(mixed)
    assert calls == [mixed]  # the whole call, so batching (padding) matches a real ingest
    assert all(not v.any() for v in out)
    embed(["another unknown text"])
    assert len(made) == 1  # loaded once, on the first miss
    assert (embed.hits, embed.misses) == (3, 3)


def test_other_input_is_embedded_by_the_real_model(table):
    texts = ["Some paper title\nAn abstract that is not in the bundled collection."]
    shipped = make_embedding_function(settings_for(), shipped=True)
    assert isinstance(shipped, ShippedEmbedding)
    got = shipped(texts)
    want = make_embedding_function(settings_for())(texts)
    assert shipped.misses == 1 and np.array_equal(got[0], want[0])
