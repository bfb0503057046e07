"""Hybrid search inside the Chroma server, where the server can: Chroma's Search API.

With a sparse BM25 index in the collection's schema (`SparseVectorIndexConfig(bm25=True)`, its
vectors made from each chunk's document by `ChromaBm25EmbeddingFunction`), one Search request
ranks the chunks by dense kNN and by BM25 and fuses the two by RRF in the server: the client
sends a vector and the query and gets the fused top `candidates` back.

chromadb 1.5.9 runs this on distributed Chroma and Chroma Cloud only. Local Chroma (in-process or
`chroma run`) refuses both halves: creating a collection with the sparse index ("Sparse vector
indexing is not enabled in local") and searching ("Search is not implemented for Local Chroma").
So:
- `create_collection` asks for the sparse index and, refused, creates the collection without it;
- `ServerSearch.available()` probes once per client and collection (the collection must have the
  sparse index, and a one-result Search must succeed) and remembers the answer in the client's
  cache (`server-search.json` beside the BM25 index, keyed to the collection's id);
- a refusal later (a server downgraded) marks it unavailable and the caller falls back to the
  client-side BM25 (retrieval.py), as it does wherever the probe says no.
The probe and the fallback are tested against local Chroma (in-process and `chroma run`), and
the request against chromadb's own classes; the accepted path is NOT exercised against a live
distributed Chroma or Chroma Cloud in CI.

With store.py, the only module that imports chromadb.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .chroma_import import prepare

BM25_KEY = "bm25_sparse"  # the metadata key of each chunk's sparse BM25 vector
# What local Chroma answers; any other failure of the probe also means "not here".
# ("key not found in schema": chromadb's client, asked for BM25 on a collection without the index.)
REFUSALS = ("Sparse vector indexing is not enabled", "not implemented", "Search is not implemented",
            "key not found in schema")


def refused(exc: BaseException) -> bool:
    return isinstance(exc, NotImplementedError) or any(r in str(exc) for r in REFUSALS)


def sparse_schema(ef_search: int | None = None):
    """A schema with the BM25 sparse index over the documents (the chunks' text), and the dense
    index as store.py configures it otherwise (cosine; Chroma takes a schema or a configuration,
    never both: "Cannot set both collection config and schema simultaneously")."""
    prepare()
    from chromadb.api.types import HnswIndexConfig, Schema, SparseVectorIndexConfig, VectorIndexConfig
    from chromadb.execution.expression import Key
    from chromadb.utils.embedding_functions import ChromaBm25EmbeddingFunction

    schema = Schema().create_index(config=VectorIndexConfig(
        space="cosine", embedding_function=None, hnsw=HnswIndexConfig(ef_search=ef_search)))
    return schema.create_index(key=BM25_KEY, config=SparseVectorIndexConfig(
        source_key=Key.DOCUMENT, embedding_function=ChromaBm25EmbeddingFunction(), bm25=True))


def create_collection(client, name: str, configuration: dict, **kw):
    """The collection with the sparse index where the server accepts it, else without (and then
    with `configuration`: {"hnsw": {"space": ..., "ef_search": ...}})."""
    hnsw = configuration.get("hnsw", {})
    try:
        return client.create_collection(name, schema=sparse_schema(hnsw.get("ef_search")), **kw)
    except Exception as exc:
        if not refused(exc):
            raise
    return client.create_collection(name, configuration=configuration, **kw)


def has_sparse_index(collection) -> bool:
    schema = getattr(collection, "schema", None)
    types = schema.keys.get(BM25_KEY) if schema is not None else None
    index = types.sparse_vector.sparse_vector_index if types and types.sparse_vector else None
    return bool(index and index.enabled)


def search_request(vector, query: str, n: int, where: dict | None, dense_weight: float = 1.0,
                   bm25_weight: float = 1.0, rrf_k: int = 60):
    """One Search: dense kNN and BM25 kNN, `n` candidates each, fused by weighted RRF.

    Chroma's ranks count from 0, ours (retrieval.py) from 1: k = rrf_k + 1 gives the same
    w / (rrf_k + rank). A chunk one list misses takes rank `n` there (`default`), just past its
    end, instead of dropping out of the fusion. Chroma sorts ascending, so its Rrf score is the
    negated sum: `hybrid` turns it back.
    """
    prepare()
    from chromadb.execution.expression import Key, Knn, Limit, Rrf, Search, Select

    rank = Rrf(ranks=[Knn(query=[float(x) for x in vector], limit=n, default=float(n), return_rank=True),
                      Knn(query=query, key=BM25_KEY, limit=n, default=float(n), return_rank=True)],
               k=rrf_k + 1, weights=[dense_weight, bm25_weight])
    return Search(where=where, rank=rank, limit=Limit(limit=n),
                  select=Select(keys={Key.DOCUMENT, Key.METADATA, Key.SCORE, Key.EMBEDDING}))


class ServerSearch:
    """The capability of one collection, probed once, and its hybrid query."""

    def __init__(self, collection, cache_file: Path | None) -> None:
        self._collection = collection
        self._file = cache_file
        self._available: bool | None = None

    def available(self) -> bool:
        if self._available is None:
            self._available = self._remembered()
            if self._available is None:
                self._available = has_sparse_index(self._collection) and self._probe()
                self._remember()
        return self._available

    def _probe(self) -> bool:
        prepare()
        from chromadb.execution.expression import Search

        try:  # the smallest Search: one record, no ranking
            self._collection.search(Search().limit(1))
            return True
        except Exception:  # refused, or anything else: the client-side path serves
            return False

    def _remembered(self) -> bool | None:
        try:
            saved = json.loads(self._file.read_text()) if self._file else {}
            return bool(saved["available"]) if saved.get("collection") == str(self._collection.id) else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def _remember(self) -> None:
        if self._file is None:
            return
        try:
            self._file.parent.mkdir(parents=True, exist_ok=True)
            self._file.write_text(json.dumps({"collection": str(self._collection.id),
                                              "available": self._available}))
        except OSError:  # a cache: probed again next time
            pass

    def hybrid(self, vector, query: str, n: int, where: dict | None, **weights: Any):
        """[(id, document, metadata, fused score (higher is better), cosine similarity to
        `vector`)], best first; None when the server refuses (then unavailable from now on)."""
        import numpy as np

        try:
            got = self._collection.search(search_request(vector, query, n, where, **weights))
        except Exception as exc:
            if not refused(exc):
                raise
            self._available = False
            self._remember()
            return None
        cols = [got["ids"][0], got["documents"][0], got["metadatas"][0], got["scores"][0],
                got["embeddings"][0]]
        q = np.asarray(vector, dtype=np.float32)
        q = q / (np.linalg.norm(q) or 1.0)

        def cosine(v) -> float:  # what dense search reports (retrieval.Hit.dense_similarity)
            v = np.asarray(v, dtype=np.float32)
            return float(q @ v / (np.linalg.norm(v) or 1.0))

        return [(cid, doc, meta, -float(score), cosine(emb)) for cid, doc, meta, score, emb in zip(*cols)]
