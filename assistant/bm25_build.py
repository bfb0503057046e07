"""bm25s's index arrays computed a page of chunks at a time, in numpy, with bounded memory.

Why not `bm25s.BM25.build_index_from_ids`: it walks every document in Python (a Counter a
document) and builds the (score, document, term) triples of the whole collection before it sorts
them into CSC arrays. At 1,000,000 synthetic chunks (102.7M terms, 87.7M distinct document-term
pairs) that peaked at 2.8 GB and took 66 s; this takes 751 MB and 14 s, for the same arrays
(benchmarks/README.md, section 5g).

Here two passes go over the pages (each chunk's term ids, read back a page at a time):
1. per page, the distinct (document, term) pairs (`np.unique` of document * vocabulary + term)
   give each term's document frequency and each document's length;
2. with the idf and the average length known, each page's pairs are scored with bm25s's own
   scoring functions and written straight to their place in the final CSC arrays: a term's
   column starts at the sum of the document frequencies before it, and pages arrive in
   document order, so a per-term cursor keeps documents ascending within a column.
Memory: the two output arrays (8 bytes a pair: ~700 MB at 1M chunks) plus one page. The arrays
are bit for bit those of `build_index_from_ids` (tests/test_bm25.py): the same float64
operations in the same order, cast to float32 at the end.

    data, indices, indptr = index_arrays(lambda: iter([(flat, lengths)]), n_vocab=3, params=p)
    # flat=[0, 1, 1, 2], lengths=[3, 1]: document 0 holds terms 0, 1, 1; document 1 term 2
    # indptr=[0, 1, 2, 3]; indices=[0, 0, 1]; data[1] is term 1's score in document 0 (tf 2)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

Pages = Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]  # each call: (term ids, lengths) pages


@dataclass(frozen=True)
class Params:
    """The scoring parameters of a `bm25s.BM25` (`Params.of(retriever)`)."""

    k1: float
    b: float
    delta: float
    method: str
    idf_method: str
    dtype: str
    int_dtype: str

    @classmethod
    def of(cls, retriever) -> "Params":
        if retriever.method in retriever.methods_requiring_nonoccurrence:
            raise ValueError(f"BM25 method {retriever.method!r} is not supported by the page builder")
        return cls(retriever.k1, retriever.b, retriever.delta, retriever.method,
                   retriever.idf_method, retriever.dtype, retriever.int_dtype)


def _pairs(flat: np.ndarray, lengths: np.ndarray, n_vocab: int):
    """(document within the page, term, count) for each distinct term of each document."""
    doc = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    keys, tf = np.unique(doc * n_vocab + np.asarray(flat, dtype=np.int64), return_counts=True)
    return keys // n_vocab, keys % n_vocab, tf


def _frequencies(pages: Pages, n_vocab: int) -> tuple[np.ndarray, np.ndarray]:
    """(chunks containing each term, every chunk's number of terms)."""
    df = np.zeros(n_vocab, dtype=np.int64)
    all_lengths = []
    for flat, lengths in pages():
        _, term, _ = _pairs(flat, lengths, n_vocab)
        df += np.bincount(term, minlength=n_vocab)
        all_lengths.append(np.asarray(lengths, dtype=np.int64))
    return df, np.concatenate(all_lengths) if all_lengths else np.zeros(0, dtype=np.int64)


def index_arrays(pages: Pages, n_vocab: int, params: Params):
    """(data, indices, indptr): `build_index_from_ids`'s CSC arrays for the pages' documents."""
    from bm25s import scoring

    df, lengths = _frequencies(pages, n_vocab)
    avg_doc_len = lengths.mean()  # as bm25s: np.array([len(doc) ...]).mean(), float64
    idf = scoring._build_idf_array(
        doc_frequencies={t: int(n) for t, n in enumerate(df.tolist())}, n_docs=len(lengths),
        compute_idf_fn=scoring._select_idf_scorer(params.idf_method), dtype=params.dtype)
    tfc = scoring._select_tfc_scorer(params.method)
    indptr = np.zeros(n_vocab + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    data = np.empty(int(indptr[-1]), dtype=params.dtype)
    indices = np.empty(int(indptr[-1]), dtype=params.int_dtype)
    cursor, first_doc = indptr[:-1].copy(), 0
    for flat, page_lengths in pages():
        doc, term, tf = _pairs(flat, page_lengths, n_vocab)
        scores = idf[term] * tfc(tf_array=tf.astype(params.dtype), l_d=np.asarray(page_lengths)[doc],
                                 l_avg=avg_doc_len, k1=params.k1, b=params.b, delta=params.delta)
        order = np.argsort(term, kind="stable")  # by term; documents stay ascending within one
        term = term[order]
        starts, counts = np.unique(term, return_index=True, return_counts=True)[1:]
        at = cursor[term] + (np.arange(len(term)) - np.repeat(starts, counts))
        data[at] = scores[order]
        indices[at] = doc[order] + first_doc
        cursor[term[starts]] += counts
        first_doc += len(page_lengths)
    return data, indices, indptr
