"""Hybrid search in the server (chroma_search.py): the request, the probe and the fallback.

Local Chroma refuses the Search API and the sparse index, so the accepted path is checked here
only through chromadb's own request classes and a collection double; the probe and the fallback
run against real local Chroma, in-process and `chroma run`. No test reaches a distributed Chroma
or Chroma Cloud."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from test_chroma_server import LOOPBACK
from test_server_refresh import chroma_url, paper, write  # noqa: F401 (the fixture)

from assistant import chroma_search
from assistant.chroma_import import prepare
from assistant.config import Settings
from assistant.retrieval import BM25Index, Retriever
from assistant.store import Store, where_filter
from assistant.types import Filters

prepare()
from chromadb.api.types import Schema
from chromadb.execution.expression import Knn, Limit, Rrf, Search, Select, Where


def knns(node) -> list[dict]:
    """Every $knn in a serialized rank expression."""
    if isinstance(node, dict):
        found = [node["$knn"]] if "$knn" in node else []
        return found + [k for v in node.values() for k in knns(v)]
    if isinstance(node, list):
        return [k for v in node for k in knns(v)]
    return []


def test_the_request_is_chromadbs_own():
    where = where_filter(Filters(year_min=2020, category="cs.CL"))
    request = chroma_search.search_request(np.array([0.6, 0.8], dtype=np.float32), "stability gap", 100,
                                           where, dense_weight=1.0, bm25_weight=0.5, rrf_k=60)
    assert isinstance(request, Search)
    assert isinstance(request._rank, Rrf) and isinstance(request._where, Where)
    assert request._rank.weights == [1.0, 0.5] and request._rank.k == 61  # 0-based ranks
    assert all(isinstance(r, Knn) for r in request._rank.ranks)
    wire = request.to_dict()
    json.dumps(wire)  # what the client sends is plain JSON
    assert wire["filter"] == Where.from_dict(where).to_dict() == {
        "$and": [{"year": {"$gte": 2020}}, {"cat:cs.CL": {"$eq": True}}]}
    assert wire["limit"] == Limit(limit=100).to_dict() == {"offset": 0, "limit": 100}
    assert set(wire["select"]["keys"]) == {"#document", "#metadata", "#score", "#embedding"}
    assert wire["select"] == Select(keys=set(request._select.keys)).to_dict()
    assert sorted(knns(wire["rank"]), key=lambda k: k["key"]) == [
        {"query": [pytest.approx(0.6), pytest.approx(0.8)], "key": "#embedding", "limit": 100,
         "default": 100.0, "return_rank": True},
        {"query": "stability gap", "key": chroma_search.BM25_KEY, "limit": 100, "default": 100.0,
         "return_rank": True},
    ]
    assert chroma_search.search_request([1.0], "q", 5, None).to_dict()["filter"] is None


def test_the_sparse_index_schema():
    schema = chroma_search.sparse_schema()
    assert isinstance(schema, Schema)
    config = schema.keys[chroma_search.BM25_KEY].sparse_vector.sparse_vector_index
    assert config.enabled and config.config.bm25 and config.config.source_key == "#document"
    wire = schema.serialize_to_json()["keys"][chroma_search.BM25_KEY]
    index = wire["sparse_vector"]["sparse_vector_index"]
    assert index["config"]["bm25"] is True and index["config"]["embedding_function"]["name"] == "chroma_bm25"


@pytest.fixture(params=["in-process", "chroma run"])
def settings(request, tmp_path, monkeypatch):
    if request.param == "in-process":
        return Settings(store_dir=tmp_path / "store", cache_dir=Path(os.environ["PAPERS_CACHE_DIR"]),
                        chroma_url=None)
    for name, value in LOOPBACK.items():
        monkeypatch.setenv(name, value)
    return Settings(chroma_url=request.getfixturevalue("chroma_url"), store_dir=tmp_path / "none",
                    cache_dir=tmp_path / "cache", collection=f"search-{tmp_path.name[-20:]}".replace("_", "-"))


def random_embed(texts):
    v = np.random.default_rng(len(texts[0])).standard_normal((len(texts), 384)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_local_chroma_refuses_and_the_client_searches(settings, monkeypatch):
    store = Store.open(settings, create=True)  # the sparse index asked for, refused, made without
    write(store, [paper(i) for i in range(6)])
    store.bump_generation()
    inner = store._collection._inner
    assert not chroma_search.has_sparse_index(inner)
    assert not store.server_search._probe()  # the Search API itself: refused too
    assert store.server_search.available() is False
    assert store.hybrid_query(random_embed(["q"])[0], "q", 10) is None  # refused at query time
    hits = Retriever(settings, store, random_embed, BM25Index.for_store(store)).search("penguin huddle")
    assert hits and hits[0].bm25_score is not None  # the client-side path
    if settings.chroma_url:  # remembered in the client's cache: a new client does not probe
        saved = json.loads((store.local_dir() / "server-search.json").read_text())
        assert saved == {"collection": store.collection_id, "available": False}
        monkeypatch.setattr(chroma_search.ServerSearch, "_probe", lambda self: pytest.fail("probed again"))
        monkeypatch.setattr(chroma_search, "has_sparse_index", lambda c: pytest.fail("probed again"))
        assert Store.open(settings).server_search.available() is False


class Accepting:
    """A collection double that answers Search as distributed Chroma does (column-major)."""

    def __init__(self, rows, refuse=False):
        self.id, self.rows, self.refuse, self.requests = "c1", rows, refuse, []

    def search(self, request):
        self.requests.append(request.to_dict())
        if self.refuse:
            raise NotImplementedError("Search is not implemented for Local Chroma")
        cols = list(zip(*self.rows))
        return {"ids": [list(cols[0])], "documents": [list(cols[1])], "metadatas": [list(cols[2])],
                "scores": [list(cols[3])], "embeddings": [list(cols[4])]}


def meta(pid, pos):
    return {"paper_id": pid, "title": f"T {pid}", "position": pos, "n_chunks": 2, "year": 2021,
            "categories": "cs.CL", "sources": "s.jsonl"}


def test_the_server_path_ranks_papers_and_falls_back_on_refusal(tmp_path, monkeypatch):
    settings = Settings(store_dir=tmp_path / "store", cache_dir=Path(os.environ["PAPERS_CACHE_DIR"]),
                        chroma_url=None)
    store = Store.open(settings, create=True)
    write(store, [paper(i) for i in range(4)])
    store.bump_generation()
    q = random_embed(["stability gap"])[0]
    rows = [("a#1", "x", meta("a", 1), -0.03, q), ("b#0", "y", meta("b", 0), -0.02, -q),
            ("a#0", "z", meta("a", 0), -0.01, q)]
    double = Accepting(rows)
    search = chroma_search.ServerSearch(double, tmp_path / "server-search.json")
    search._available = True
    store.__dict__["_server_search"] = search
    retriever = Retriever(settings, store, lambda texts: [q], bm25=None)  # the client holds no index
    hits = retriever.search("stability gap", k=5, filters=Filters(year_min=2020))
    assert [h.paper_id for h in hits] == ["a", "b"]
    assert [c.chunk_id for c in hits[0].chunks] == ["a#1", "a#0"]
    best = (settings.dense_weight + settings.bm25_weight) / (settings.rrf_k + 1)
    assert hits[0].score == pytest.approx(0.03 / best) and hits[0].dense_similarity == pytest.approx(1.0)
    assert hits[1].dense_similarity == pytest.approx(-1.0)
    assert len(double.requests) == 1 and double.requests[0]["filter"] == {"year": {"$gte": 2020}}

    double.refuse = True  # a server that stopped accepting: the client-side path, remembered
    retriever.bm25 = BM25Index.for_store(store)
    hits = retriever.search("penguin huddle")
    assert hits and hits[0].bm25_score is not None and search.available() is False
    assert json.loads((tmp_path / "server-search.json").read_text())["available"] is False
