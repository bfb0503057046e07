"""The offline embedding function: all-MiniLM-L6-v2 (int8 ONNX) through chromadb's own code.

chromadb's ONNXMiniLM_L6_V2 pads every text to 256 word pieces. Our chunks are ~120-200 pieces,
so we sort texts by length and pad each batch only to its longest text. The attention mask makes
the vectors the same (min cosine 0.99999 against chromadb's fixed padding, 200 abstracts).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np

from .assets import ensure_minilm
from .config import Settings

MODEL_NAME = "all-MiniLM-L6-v2-int8"
DIMENSION = 384


def _chroma_onnx_class():
    # Imported lazily: chromadb's import costs ~1 s and `papers --help` should not pay it.
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


def make_embedding_function(settings: Settings):
    """A callable list[str] -> list of 384-d unit vectors (np.float32), fully offline."""
    folder = ensure_minilm(settings.cache_dir)
    return _make_class()(folder, batch_size=settings.embed_batch_size)
