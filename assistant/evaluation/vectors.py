"""Embeddings for the eval, cached in `evals/embeddings.npz`, and the eval's private store.

Embedding the bundled corpus takes ~1.5 min on 2 cores and the faithfulness scorer embeds ~1,000
statements and source sentences: too slow for a replay that should take seconds. `--record`
saves every vector the run used (float32, keyed by sha1 of the text) next to the cassettes, and
replay reads them back; a text missing from the file (the chunking or the corpus changed) is
embedded live, so the cache can make a run slower but never different.

The store is built once per (corpus, chunking, embedding model) under
`<cache_dir>/eval-store/<key>` with `assistant.ingest.ingest`, reusing the cached vectors.
The file's format and loader are the shipped vectors' (assistant/embeddings.py); its chunk
vectors are the same floats as the shipped ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from assistant.config import Settings
from assistant.embeddings import EmbedFn, read_vectors, text_key, write_vectors

__all__ = ["EmbedFn", "EmbeddingCache", "corpus_chunk_texts", "eval_store", "store_key", "text_key"]


class EmbeddingCache:
    """sha1(text) -> float32 vector, from an .npz file; misses go to the real model."""

    def __init__(self, path: Path | None, settings: Settings) -> None:
        self.path = path
        self.settings = settings
        self._vectors: dict[str, np.ndarray] = {}
        self._used: set[str] = set()
        self._live: EmbedFn | None = None
        self.misses = 0
        if path is not None and path.is_file():
            self._vectors = read_vectors(path)

    def __len__(self) -> int:
        return len(self._vectors)

    def _model(self) -> EmbedFn:
        if self._live is None:
            from assistant.embeddings import make_embedding_function

            self._live = make_embedding_function(self.settings)
        return self._live

    def __call__(self, texts: Sequence[str]) -> list[np.ndarray]:
        texts = list(texts)
        keys = [text_key(t) for t in texts]
        todo = {k: t for k, t in zip(keys, texts) if k not in self._vectors}
        if todo:
            self.misses += len(todo)
            vectors = self._model()(list(todo.values()))
            for k, v in zip(todo, vectors):
                self._vectors[k] = np.asarray(v, dtype=np.float32)
        self._used.update(keys)
        return [self._vectors[k] for k in keys]

    def save(self, keep_unused: bool = False) -> None:
        """Write the vectors this run used (plus the old ones when `keep_unused`)."""
        if self.path is None:
            return
        keys = self._vectors if keep_unused else self._used
        write_vectors(self.path, {k: self._vectors[k] for k in keys})


def store_key(settings: Settings) -> str:
    """Changes when the corpus files, the chunking (code or sizes), the retrieval code (the
    names saved at ingest) or the embedding model change."""
    from assistant.corpus import bundled_paths
    from assistant.embeddings import MODEL_NAME

    import assistant.chunking
    import assistant.retrieval

    digest = hashlib.sha256(f"{MODEL_NAME}|{settings.chunk_size}|{settings.chunk_overlap}".encode())
    # the chunking code too: ingest re-chunks a paper only when its text or sizes change; and
    # the names ingest saves with the BM25 index (retrieval.defined_names) are not re-read
    for module in (assistant.chunking, assistant.retrieval):
        digest.update(Path(module.__file__).read_bytes())
    for path in sorted(bundled_paths()):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def corpus_chunk_texts(settings: Settings) -> list[str]:
    """What ingest embeds: every chunk's `embed_text` of the bundled corpus."""
    from assistant.assets import ensure_tiktoken
    from assistant.chunking import chunk_paper
    from assistant.corpus import bundled_paths, read_papers

    ensure_tiktoken(settings.cache_dir)
    papers = read_papers(bundled_paths()).papers
    return [c.embed_text for p in papers
            for c in chunk_paper(p, settings.chunk_size, settings.chunk_overlap)]


EF_SEARCH = 10_000  # >= the number of chunks: HNSW search becomes exhaustive, hence exact


def eval_store(settings: Settings, embed: EmbedFn) -> Settings:
    """Settings whose store holds the bundled corpus (built or brought up to date here).

    The store's HNSW search is made exhaustive (ef_search >= its size): with Chroma's default
    (100) the 50 nearest chunks of a query differ from one process to the next (a true
    neighbour is sometimes missed), so the sources of a prompt could change between recording
    and replay. Chroma reads ef_search when it loads the index, so the collection is created
    with it, before ingest loads anything; a store built otherwise is rebuilt.
    """
    from assistant.errors import StoreMismatchError
    from assistant.ingest import ingest
    from assistant.store import Store

    if settings.chroma_url:
        settings = settings.model_copy(update={"chroma_url": None, "chroma_token": None})
    folder = Path(settings.cache_dir) / "eval-store" / store_key(settings)
    folder.parent.mkdir(parents=True, exist_ok=True)
    store_settings = settings.model_copy(
        update={"store_dir": folder, "collection": "papers", "hnsw_ef_search": EF_SEARCH})
    try:
        store = Store.open(store_settings, create=True)
    except StoreMismatchError:
        Store.delete(store_settings)
        store = Store.open(store_settings, create=True)
    if store.ef_search < EF_SEARCH:  # built before ef_search was set when it is created
        Store.delete(store_settings)
        Store.open(store_settings, create=True)
    ingest(store_settings, None, embed=embed)
    return store_settings
