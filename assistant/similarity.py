"""Cosine similarity of short texts with the embedding model, each text embedded once per process.

The answer embeds the question, the sentences of the papers it considers (to pick quotes) and
the sentences the model writes (to check them). MiniLM costs ~8 ms a sentence on 2 cores, so
a text is never embedded twice: quotes picked for the question are the very sentences the
check compares the model's sentences with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

EmbedFn = Callable[[list[str]], Sequence[Sequence[float]]]
MAX_CACHED = 50_000  # texts (~77 MB of float32 vectors); the oldest half goes when it is full


class Similarity:
    """`sims(text, others)`: cosine similarities of one text with each of `others`."""

    def __init__(self, embed: EmbedFn) -> None:
        self.embed = embed
        self._cache: dict[str, np.ndarray] = {}

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of `texts` (n x d), embedding only those not seen before."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            if len(self._cache) + len(missing) > MAX_CACHED:
                for key in list(self._cache)[: len(self._cache) // 2]:
                    del self._cache[key]
            for text, vec in zip(missing, self.embed(missing)):
                v = np.asarray(vec, dtype=np.float32)
                self._cache[text] = v / (np.linalg.norm(v) or 1.0)
        if not texts:
            return np.zeros((0, 1), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])

    def sims(self, text: str, others: Sequence[str]) -> np.ndarray:
        if not others:
            return np.zeros(0, dtype=np.float32)
        vs = self.vectors([text, *others])
        return vs[1:] @ vs[0]

    def __call__(self, texts: list[str]) -> list[np.ndarray]:
        """An embedding function over the cache (for code that takes one)."""
        return list(self.vectors(texts))
