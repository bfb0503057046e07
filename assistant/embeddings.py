"""The offline embedding function: all-MiniLM-L6-v2 (int8 ONNX) through chromadb's own code.

chromadb's ONNXMiniLM_L6_V2 pads every text to 256 word pieces. Our chunks are ~120-200 pieces,
so we sort texts by length and pad each batch only to its longest text. The attention mask makes
the vectors the same (min cosine 0.99999 against chromadb's fixed padding, 200 abstracts).

Shipped vectors: the bundled collection's chunk vectors are known in advance, so the package
ships them (assistant/data/vectors/, written by scripts/ship_vectors.py from a real ingest) and a
first ingest looks them up instead of running the model (~1.5 min on 2 cores). A table is used
only when its manifest entry matches the model (name and file sha256), the chunking (size,
overlap) and the batch size, and the file's sha256 matches; anything else embeds for real.

With PAPERS_EMBED_BASE_URL set, `EndpointEmbedding` replaces all of this (no shipped vectors):
llm.embed_texts does each request, this module batches them and keeps several in flight.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path

import numpy as np

from .assets import MINILM_MODEL, MINILM_TOKENIZER_FILES, ensure_minilm, sha256_file
from .config import Settings
from .errors import EmbeddingError

MODEL_NAME = "all-MiniLM-L6-v2-int8"
DIMENSION = 384
IN_PROCESS, ENDPOINT = "in-process", "endpoint"  # the embedder kinds a store records


def _chroma_onnx_class():
    # Imported lazily: chromadb's import costs ~1 s and `papers --help` should not pay it.
    from .chroma_import import prepare

    prepare()
    from chromadb.utils.embedding_functions.onnx_mini_lm_l6_v2 import ONNXMiniLM_L6_V2

    return ONNXMiniLM_L6_V2


def _make_class():
    base = _chroma_onnx_class()

    class OfflineMiniLM(base):  # type: ignore[misc, valid-type]
        """ONNXMiniLM_L6_V2 reading staged files, padding per batch, batching by length."""

        def __init__(self, folder: Path, batch_size: int = 32) -> None:
            self.DOWNLOAD_PATH = folder  # instance attribute: read by the base class's loaders
            self._batch_size = batch_size
            super().__init__(preferred_providers=["CPUExecutionProvider"])

        @cached_property
        def tokenizer(self):  # noqa: D401 - same contract as the base property
            tok = base.tokenizer.func(self)
            tok.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the batch's longest text
            return tok

        def _forward(self, documents, batch_size=32):
            """The base class's mean pooling, but each batch is tokenized (and padded) together."""
            out = []
            for i in range(0, len(documents), batch_size):
                encoded = self.tokenizer.encode_batch(documents[i : i + batch_size])
                ids = np.array([e.ids for e in encoded], dtype=np.int64)
                mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
                feed = {"input_ids": ids, "attention_mask": mask,
                        "token_type_ids": np.zeros_like(ids)}
                hidden = self.model.run(None, feed)[0]
                weights = mask[:, :, None].astype(np.float32)
                pooled = (hidden * weights).sum(1) / np.clip(weights.sum(1), 1e-9, None)
                out.append(self._normalize(pooled).astype(np.float32))
            return np.concatenate(out)

        def __call__(self, input):  # noqa: A002 - chromadb's parameter name
            texts = list(input)
            if not texts:
                return []
            order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
            vectors = self._forward([texts[i] for i in order], batch_size=self._batch_size)
            out = np.empty_like(vectors)
            out[order] = vectors
            return list(out)

    return OfflineMiniLM


def make_embedding_function(settings: Settings, *, shipped: bool = False):
    """A callable list[str] -> list of 384-d unit vectors (np.float32), fully offline.

    `shipped`: look texts up in the vectors shipped for these settings first (ingest's choice);
    the model is then staged and loaded only on the first text the table lacks.
    """
    if settings.uses_embed_endpoint:
        return EndpointEmbedding(settings)
    if shipped:
        table = shipped_table(settings)
        if table is not None:
            return ShippedEmbedding(table, lambda: make_embedding_function(settings))
    folder = ensure_minilm(settings.cache_dir)
    return _make_class()(folder, batch_size=settings.embed_batch_size)


def embedder_identity(settings: Settings) -> dict:
    """What a store records about its embedder: model, kind and dimension (None for an
    endpoint until its first vector says it)."""
    if not settings.uses_embed_endpoint:
        return {"embedding_model": MODEL_NAME, "embedding_kind": IN_PROCESS, "dimension": DIMENSION}
    if not settings.embed_model:
        raise EmbeddingError("PAPERS_EMBED_BASE_URL is set but PAPERS_EMBED_MODEL is not: name the "
                             "embedding model the endpoint serves")
    return {"embedding_model": settings.embed_model, "embedding_kind": ENDPOINT, "dimension": None}


class EndpointEmbedding:
    """Unit vectors from an OpenAI-compatible /v1/embeddings: `embed_batch_size` texts a request,
    `embed_concurrency` requests in flight; the first failed request fails the call."""

    def __init__(self, settings: Settings) -> None:
        from .llm import embed_client

        self.model = embedder_identity(settings)["embedding_model"]
        self.dimension: int | None = None
        self._client = embed_client(settings)
        self._batch, self._attempts = settings.embed_batch_size, settings.embed_attempts
        self._pool = ThreadPoolExecutor(settings.embed_concurrency, thread_name_prefix="embed")

    def __call__(self, input):  # noqa: A002 - chromadb's parameter name
        from .llm import embed_texts

        texts = list(input)
        batches = [texts[i : i + self._batch] for i in range(0, len(texts), self._batch)]
        futures = [self._pool.submit(embed_texts, self._client, self.model, b, self._attempts)
                   for b in batches]
        try:
            rows = [v for f in futures for v in f.result()]
        finally:
            for f in futures:  # a failed batch (or Ctrl-C): the others not yet sent never are
                f.cancel()
        if not texts:
            return []
        try:
            vectors = np.asarray(rows, dtype=np.float32)
        except ValueError:
            vectors = np.zeros((0,))
        width = vectors.shape[1] if vectors.ndim == 2 else 0
        if not width or width != (self.dimension or width):
            raise EmbeddingError(f"the embeddings endpoint returned vectors of varying or no length "
                                 f"for model {self.model}: check the server's pooling and PAPERS_EMBED_MODEL")
        self.dimension = vectors.shape[1]
        # Unit length, as MiniLM's: a dot product is then the cosine everywhere.
        vectors /= np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
        return list(vectors)


# --- vector tables: sha1(text) -> float32, in .npz (also the format of evals/embeddings.npz) ---
EmbedFn = Callable[[list[str]], Sequence[Sequence[float]]]
SHIPPED_DIR = Path(__file__).parent / "data" / "vectors"
MANIFEST = "manifest.json"


def text_key(text: str) -> str:
    """A table's key: sha1 of the exact text the model sees (Chunk.embed_text for chunks)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def read_vectors(path: Path) -> dict[str, np.ndarray]:
    """An .npz of `keys` (sha1 hex) and `vectors` (n x 384 float32) as a dict."""
    with np.load(path, allow_pickle=False) as data:
        keys, vectors = data["keys"], data["vectors"]
    return {str(k): v for k, v in zip(keys, vectors.astype(np.float32))}


def write_vectors(path: Path, vectors: dict[str, np.ndarray]) -> None:
    """Write a table (keys sorted), atomically."""
    keys = sorted(vectors)
    matrix = (np.stack([vectors[k] for k in keys]) if keys
              else np.zeros((0, DIMENSION), np.float32))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, keys=np.array(keys), vectors=matrix.astype(np.float32))
    tmp.replace(path)


def table_params(settings: Settings) -> dict:
    """What a shipped table's vectors depend on besides the text: its manifest entry's key.

    The batch size is in it because each batch is padded to its longest text, which moves the
    vectors by ~1e-7: shipped vectors are the exact floats a real ingest stores.
    """
    return {
        "model": MODEL_NAME,
        "model_sha256": MINILM_MODEL[3],
        "tokenizer_sha256": MINILM_TOKENIZER_FILES["tokenizer.json"],
        "chunk_size": settings.chunk_size,
        "chunk_overlap": settings.chunk_overlap,
        "embed_batch_size": settings.embed_batch_size,
    }


def shipped_table(settings: Settings, folder: Path = SHIPPED_DIR) -> dict[str, np.ndarray] | None:
    """The shipped vectors for these settings, or None (no entry, file missing or corrupt)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    params = table_params(settings)
    for entry in manifest.get("tables", []):
        if all(entry.get(k) == v for k, v in params.items()):
            path = folder / entry["file"]
            try:
                # 1.5 MB: ~5 ms to hash; a damaged install must not store wrong vectors
                if sha256_file(path) != entry["sha256"]:
                    return None
                table = read_vectors(path)
            except (OSError, ValueError, KeyError):
                return None
            if any(v.shape != (DIMENSION,) for v in table.values()):
                return None
            return table
    return None


class ShippedEmbedding:
    """Vectors from a table; a call with any text the table lacks embeds the whole call for real.

    Whole calls, not just the misses: the model pads each batch to its longest text, so a vector
    depends (by ~1e-7) on its batch-mates, and this way every call returns exactly either what
    the shipping ingest stored or what the real model gives for that call. The real model
    (staging ~23 MB and loading ONNX, ~1 s) is made on the first miss only.
    """

    def __init__(self, table: dict[str, np.ndarray], make_real: Callable[[], EmbedFn]) -> None:
        self.table = table
        self._make_real = make_real
        self._real: EmbedFn | None = None
        self.hits = 0  # texts answered from the table
        self.misses = 0  # texts embedded for real

    def __call__(self, input):  # noqa: A002 - chromadb's parameter name
        texts = list(input)
        vectors = [self.table.get(text_key(t)) for t in texts]
        if all(v is not None for v in vectors):
            self.hits += len(texts)
            return vectors
        if self._real is None:
            self._real = self._make_real()
        self.misses += len(texts)
        return list(self._real(texts))
