"""Hybrid retrieval: dense (MiniLM in Chroma) + BM25 (bm25s) over chunks, fused at paper level.

Each retriever returns its top `candidates` chunks. A paper's rank in a retriever is the rank of
its best chunk among papers; the two paper rankings are fused by weighted reciprocal rank fusion:

    score(p) = w_dense / (rrf_k + rank_dense(p)) + w_bm25 / (rrf_k + rank_bm25(p))

Worked example (rrf_k=60, weights 1): paper A is 1st dense and 3rd BM25 -> 1/61 + 1/63 = 0.0323;
paper B is 2nd dense only -> 1/62 = 0.0161. A paper found by both beats one found by one, and the
exact similarity values (not comparable across retrievers) never matter. Scores are reported
divided by the best possible score (first in both), so 1.0 means "top of both lists".
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from . import bm25, bm25_update
from .bm25 import bm25_text
from .bm25 import tokenize as _tokenize
from .chunk_table import ChunkTable, PaperChunks, TableWriter
from .config import Settings
from .store import Store
from .store_records import matches  # one filter rule: BM25, Store.query, Chroma's where
from .text import edit_distance, valid_text
from .types import Chunk, Filters, Hit

# --- names and acronyms an abstract defines -------------------------------------------------
# "prior-data fitted networks (PFNs)", "Masked Structural Growth (MSG)": the token in brackets;
# "TTT (test-time training)": the token before an expansion; "TabPFN: A Transformer ...": a
# title's short prefix; "we propose MASTER, ...": a name-like token after a verb of naming.
# At most 64 characters: unbounded, a run like "a.a.a.a..." (every "." a word boundary) made
# each pattern below scan to the run's end from every boundary, quadratic in the text: an 8 KB
# abstract took 0.25 s, 40 KB ~6 s at ingest. Bounded, each start costs at most 64 steps.
_NAME = r"[A-Za-z0-9][A-Za-z0-9.\-]{0,62}[A-Za-z0-9]"
_IN_BRACKETS = re.compile(r"\((" + _NAME + r")([),;])")
_BEFORE_EXPANSION = re.compile(r"\b(" + _NAME + r") \((?:[A-Za-z][a-z\-]*\s){1,}")
_NAMED = re.compile(r"\b(?:propose|introduce|present|call|dub|name|named|called|dubbed|termed)"
                    r"(?:d|s)?\s+(?:a |an |the )?(" + _NAME + r")\b")
# A coined name that is a capitalised word, named in apposition: "we propose Compressor, a novel
# approach", "we introduce Guru, a curated RL reasoning corpus", "the Self-Reference (SR)
# approach". name_like() rejects capitalised words ("Large"), so these need the syntax; in the
# bundled collection it adds Compressor, Guru, Apollo, Zecoler, Self-Reference and
# Mixture-of-Denoisers, and "How does Compressor shrink pre-trained code models?" no longer
# abstains as a near miss on "shrink".
_NAMED_WORD = re.compile(r"\b(?:propose|introduce|present|call|dub|name|term)(?:d|s|ed)?\s+(?:the )?"
                         r"([A-Z][a-z]{2,30}(?:-[A-Za-z][a-z]{1,30}){0,3})(?:,\s+(?:a|an|which)\b| \()")
_FOR_SHORT = re.compile(r"\b(" + _NAME + r"),? for short\b")  # "..., or LOOK for short"
_QUERY_TOKEN = re.compile(_NAME)


# Stems of the words that make a sentence a question ("what", "does", "which"): bm25s's English
# stop words keep them, and abstracts rarely use them, so their IDF would make them the
# heaviest words of every question's coverage.
QUESTION_WORDS = frozenset("""what which who whom whose how why when where doe do did is are was
    were can could would should will ani anyth someth there here tell know
    list all about show give find""".split())
# ... and their imperative counterparts: "List all papers about diffusion." asks what "Which
# papers are about diffusion?" asks; "list" (a word a few abstracts use) weighed most of its
# coverage (0.22, so it abstained).


def name_like(token: str) -> bool:
    """An acronym or coined name: "PFN", "TabPFN", "Craw4LLM", "wav2vec", "CT-LLM"; not "Large"."""
    if all(part.isalpha() and (part.islower() or part.istitle()) for part in token.split("-")):
        return False  # "Domain-Adaptive", "Pre-Training", "text-to-image": words, not a name
    upper = sum(ch.isupper() for ch in token)
    digit = any(ch.isdigit() for ch in token)
    letters = any(ch.isalpha() for ch in token)
    return bool(letters and len(token) >= 2) and (upper >= 2 or (digit and (upper or token[0].isalpha()))
                                            or (upper == 1 and not token[0].isupper()))


def _singular(token: str) -> str:
    """"PFNs" -> "PFN", "LLMs" -> "LLM"; "GPTQ" unchanged."""
    return token[:-1] if len(token) > 2 and token.endswith("s") and token[-2].isupper() else token


def _abbreviates(name: str, before: str) -> bool:
    """"PFNs" after "prior-data fitted networks": its capitals are initials of the words before.

    A bracket that goes on after the name ("(PFNs; ...)") defines it only then: "(CIFAR-10,
    ImageNet 32 x 32, and ...)" lists data sets the paper uses, and treating each as the paper's
    own name put the Selfie paper first for any question that said "CIFAR-10" (12 such lists in
    the bundled abstracts, none a definition).
    """
    caps = [ch.lower() for ch in _singular(name) if ch.isupper()]
    initials = iter(w[0].lower() for w in re.findall(r"[A-Za-z]+", before)[-(len(caps) + 3):])
    return bool(caps) and all(ch in initials for ch in caps)  # a subsequence, in order


def defined_names(title: str, text: str) -> set[str]:
    """Acronyms and coined names that a paper's title or abstract defines."""
    names = {m[1] for m in _IN_BRACKETS.finditer(text) if name_like(m[1])
             and (m[2] == ")" or _abbreviates(m[1], text[max(0, m.start() - 160):m.start()]))}
    names |= {m for m in _BEFORE_EXPANSION.findall(text) if name_like(m)}
    names |= {m for m in _NAMED.findall(text) if name_like(m)}
    names |= {m for m in _FOR_SHORT.findall(text) if name_like(m)}
    names |= set(_NAMED_WORD.findall(text))
    prefix = title.split(":", 1)[0].strip() if ":" in title else ""
    if prefix and len(prefix.split()) == 1:
        names.add(prefix)  # "Mangosteen: ...", "GPTQ: ...", "MASTER: ..."
    names |= {t for t in _QUERY_TOKEN.findall(title) if name_like(t)}
    return {_singular(n) for n in names}


_STYLE_SUFFIX = re.compile(r"-(?:style|like|based|inspired|type|esque|flavou?red)$", re.IGNORECASE)


def _case_ok(query_token: str, name: str) -> bool:
    """An all-capitals name that is also a word ("MAKE", "PRIOR") matches only in capitals."""
    if name.isalpha() and name.isupper():
        return _singular(query_token).isupper()
    return True


# The names table's files beside the index. "-3": _NAMED_WORD ("-2": the rule of _abbreviates);
# an index saved under an older rule has only its older files, which are ignored: the first
# search computes the table again and saves it (`BM25Index.for_store`; ~0.25 ms a paper, once).
NAMES_FILE = "names-3.json"
NAMES_STATE_FILE = "names-state-3.json"


def _load_names(path: Path) -> dict[str, tuple[list[tuple[str, str]], int]] | None:
    """NAMES_FILE as NameTable.result() gave it, or None when the index has none."""
    if not path.exists():
        return None
    raw = json.loads(path.read_text())
    return {k: ([(name, pid) for name, pid in owners], int(count)) for k, (owners, count) in raw.items()}


CORRECT_MIN_DF = 3  # a misspelt query term is corrected only to a term in this many chunks


class BM25Index:
    """bm25s over chunk texts (title + chunk), persisted beside the store, keyed by generation.

    `chunks` is a ChunkTable: the chunks by number (`len`, `chunks[i]`, iteration), read from
    chunks.jsonl on demand when loaded; bm25s's arrays are memory-mapped (chunk_table.py).
    """

    def __init__(self, retriever, chunks: ChunkTable, generation: str, df: dict[str, int]) -> None:
        self._retriever = retriever
        self.chunks = chunks
        self.generation = generation
        self._df = df  # stemmed term -> number of chunks containing it

    def tokens(self, text: str) -> list[str]:
        """Stemmed, stop-word-free terms, as this index counts them."""
        return list(_tokenize([text], False)[0])

    def df(self, term: str) -> int:
        """Number of chunks containing the stemmed term."""
        return self._df.get(term, 0)

    def coverage(self, query: str, text: str) -> float:
        """IDF-weighted share of the query's terms found in `text` (0..1).

        An absolute relevance signal that ranks (RRF) cannot give: "how do I bake sourdough
        bread" covers 0.0 of any abstract here ("sourdough" is unseen, so it weighs most), while
        "which papers study the stability gap?" covers ~0.8 of the right paper ("paper", "study"
        are common, so they weigh little).
        """
        words = [w for w in self.corrected(_tokenize([query], False)[0]) if w not in QUESTION_WORDS]
        if not words:
            return 0.0
        seen = _tokenize([text], False)[0]
        n = max(len(self.chunks), 1)
        idf = {t: math.log(1 + n / (1 + self._df.get(t, 0))) for t in words}
        # Adjacent query words found adjacent in the text ("stability gap") count once more,
        # with the weight of their rarer word: phrases separate on-topic from merely related.
        present = set(seen) | set(zip(seen, seen[1:]))
        for pair in zip(words, words[1:]):
            idf[pair] = max(idf[pair[0]], idf[pair[1]])
        return sum(w for t, w in idf.items() if t in present) / sum(idf.values())

    @classmethod
    def build(cls, chunks: list[Chunk], generation: str) -> "BM25Index":
        builder = bm25.Builder()
        builder.add([c.embed_text for c in chunks])
        retriever, df = builder.finish()
        return cls(retriever, ChunkTable.from_chunks(chunks), generation, df)

    def save(self, folder: Path) -> None:
        """Write the index to a temporary folder beside `folder`, then swap it into place."""

        def fill(tmp: Path) -> None:
            table = TableWriter()
            with open(tmp / "chunks.jsonl", "wb") as fh:
                table.write(fh, self.chunks)
            table.save(tmp)
            bm25.write_parts(tmp, self._retriever, self._df, self.generation, len(self.chunks))

        bm25.swap_in(folder, fill)

    @classmethod
    def load(cls, folder: Path, generation: str) -> "BM25Index | None":
        """The saved index when it matches the store's generation and is whole, else None."""
        import bm25s

        try:
            meta = (folder / "meta.json").read_text()
            if json.loads(meta)["generation"] != generation:
                return None
            chunks = ChunkTable.load(folder)  # none (an index saved before it), or cut: rebuilt
            retriever = bm25s.BM25.load(str(folder / "bm25"), mmap=True) if len(chunks) else bm25s.BM25()
            df = json.loads((folder / "df.json").read_text())
            # A truncated chunks.jsonl, or a save swapped in while we read: not this index.
            if json.loads(meta)["chunks"] != len(chunks):
                return None
            if (folder / "meta.json").read_text() != meta:
                return None
            names = _load_names(folder / NAMES_FILE)
        except (OSError, ValueError, KeyError, TypeError, EOFError):  # np.load of an empty file: EOFError
            return None
        index = cls(retriever, chunks, generation, df)
        if names is not None:
            index.__dict__["names"] = names  # the cached_property, computed at ingest
        return index

    @classmethod
    def for_store(cls, store: Store) -> "BM25Index":
        """The store's BM25 index: loaded from beside the store, refreshed from the chunks that
        changed since it was saved (bm25_update.py), or built from it page by page (as ingest
        does, its names table included), saved and loaded.

        Saving is a cache here: a search on a read-only or full store still gets its index
        (built in memory from every chunk). Ingest saves through `refresh`, which reports such
        failures.
        """
        folder = store.local_dir() / "bm25"
        index = cls.load(folder, store.generation)
        if index is None:  # refreshed from the changes, else rebuilt page by page as ingest does
            with contextlib.suppress(OSError):
                if not bm25_update.update(store, folder):
                    cls._write(store, folder)
                index = cls.load(folder, store.generation)
        if index is None:  # not saved: held in memory for this process
            return cls.build(list(store.iter_chunks()), store.generation)
        if "names" not in index.__dict__ and len(index.chunks):  # saved without (or by older code)
            table = index.name_table()
            index.__dict__["names"] = table.result()
            with contextlib.suppress(OSError):  # a cache: a read-only store computes it each time
                table.write(folder)
        return index

    @classmethod
    def refresh(cls, store: Store) -> None:
        """Ingest's path: rebuild the saved index when the store changed, page by page (bm25.py).

        Unlike `for_store` it never holds the collection in memory, and a failure to save is
        the user's to know (a read-only or full store), so the OSError becomes a PapersError.
        """
        folder = store.local_dir() / "bm25"
        if bm25.is_current(folder, store.generation, chunks=store.count()):
            return
        try:
            if bm25_update.update(store, folder) and bm25.is_current(folder, store.generation,
                                                                     chunks=store.count()):
                return
            cls._write(store, folder)
        except OSError as exc:
            from .store import store_failure

            raise (store_failure(exc, str(folder.parent)) or exc) from None

    @staticmethod
    def _write(store: Store, folder: Path) -> None:
        """The store's index saved to `folder` page by page, with its names table."""
        table = NameTable()

        def save_names(tmp: Path, exact: bool) -> None:
            if exact:  # else left to the first search (a paper's chunks were not together)
                table.write(tmp)

        bm25.write_for_store(store, folder, on_paper=table.add, extras=save_names)

    # --- fields derived from the chunks (built on first use, ~0.1 s per 1,000 chunks) -------
    @cached_property
    def paper_chunks(self) -> PaperChunks:
        """paper_id -> its chunks (a Mapping read from the table on demand)."""
        return PaperChunks(self.chunks)

    @cached_property
    def names(self) -> dict[str, tuple[list[tuple[str, str]], int]]:
        """casefolded name -> ([(name as defined, paper_id)], number of papers mentioning it).

        Saved with the index at ingest (NAMES_FILE): built here it costs ~0.25 ms a paper,
        ~50 s on the first question at 200,000 papers.
        """
        return self.name_table().result()

    def name_table(self) -> "NameTable":
        """The names table of every paper in the index, built from its chunks."""
        table = NameTable()
        for paper_id, chunks in self.paper_chunks.items():
            table.add(paper_id, chunks)
        return table

    def _title_terms(self, paper_ids) -> dict[str, set[str]]:
        """Stemmed terms of each paper's title, for the papers asked about, cached per paper
        (tokenizing every title up front cost ~10 s at 200,000 papers)."""
        cache = self.__dict__.setdefault("_titles_cache", {})
        todo = [(p, cs[0].title) for p in dict.fromkeys(paper_ids)
                if p not in cache and (cs := self.paper_chunks.get(p))]
        for (p, _), terms in zip(todo, _tokenize([t for _, t in todo], False) if todo else []):
            cache[p] = set(terms)
        return cache

    def _chunk_terms(self, chunks: Sequence[Chunk]) -> list[set[str]]:
        """Stemmed terms of each chunk's title + text, cached per chunk."""
        cache = self.__dict__.setdefault("_terms_cache", {})
        todo = [c for c in chunks if c.chunk_id not in cache]
        if todo:
            for c, terms in zip(todo, _tokenize([c.embed_text for c in todo], False)):
                cache[c.chunk_id] = set(terms)
        return [cache[c.chunk_id] for c in chunks]

    def paper_coverage(self, query: str, results: Sequence[tuple[Chunk, float]]) -> dict[str, float]:
        """paper_id -> IDF-weighted share of the query's terms in its best chunk among `results`.

        Tells a BM25 rank earned by the query's rare words from one earned by "model" and
        "paper": a paraphrase shares no key term with its paper, and its BM25 list is noise.
        """
        words = set(self.corrected(_tokenize([query], False)[0]))
        if not words or not results:
            return {}
        n = max(len(self.chunks), 1)
        idf = {t: math.log(1 + n / (1 + self._df.get(t, 0))) for t in words}
        total = sum(idf.values())
        out: dict[str, float] = {}
        for (chunk, _), terms in zip(results, self._chunk_terms([c for c, _ in results])):
            share = sum(w for t, w in idf.items() if t in terms) / total
            out[chunk.paper_id] = max(out.get(chunk.paper_id, 0.0), share)
        return out

    def named_papers(self, query: str, max_papers: int) -> dict[str, float]:
        """paper_id -> share of a name in the query that the paper defines.

        A name defined by one paper gives it 1.0; by two, 0.5 each. A name that more than
        `max_papers` papers mention ("LLMs", "GPT", "SQuAD") says little about which paper is
        meant and is ignored: "GPT" is defined by a video paper but used by the GPTQ one.
        """
        out: dict[str, float] = {}
        for token in set(_QUERY_TOKEN.findall(query)):
            token = _STYLE_SUFFIX.sub("", token)  # "DINOv2-style" names DINOv2
            for key in {token.casefold(), _singular(token).casefold()}:
                defined, mentioned = self.names.get(key, ((), 0))
                owners = {p for name, p in defined if _case_ok(token, name)}
                if owners and mentioned <= max_papers:
                    for p in owners:
                        out[p] = max(out.get(p, 0.0), 1.0 / len(owners))
        return out

    def title_match(self, query: str, paper_ids) -> dict[str, float]:
        """paper_id -> IDF-weighted share of the query's terms found in the paper's title."""
        words = set(_tokenize([query], False)[0])
        if not words:
            return {}
        n = max(len(self.chunks), 1)
        idf = {t: math.log(1 + n / (1 + self._df.get(t, 0))) for t in words}
        total = sum(idf.values())
        out = {}
        paper_ids = list(paper_ids)
        titles = self._title_terms(paper_ids)
        for p in paper_ids:
            terms = titles.get(p, set())
            score = sum(w for t, w in idf.items() if t in terms) / total
            if score > 0:
                out[p] = score
        return out

    def share(self, filters: Filters | None) -> float | None:
        """The fraction of indexed chunks that pass `filters` (None without filters or chunks):
        one numpy pass over the memory-mapped table, ~2 ms at 1M chunks."""
        if filters is None or filters.is_empty() or not self.chunks:
            return None
        return float(self._mask(filters).mean())

    def _mask(self, filters: Filters) -> np.ndarray:
        """matches() per chunk, kept for the last filters (a search asks three times)."""
        last = self.__dict__.get("_last_mask")
        if last is None or last[0] != filters:
            last = self.__dict__["_last_mask"] = (filters, self.chunks.mask(filters))
        return last[1]

    def passes(self, filters: Filters | None) -> Callable[[Sequence[str]], list[bool | None]] | None:
        """Which of some chunk ids pass `filters`, from the table (None: not in the index), so
        that Store.query can post-filter Chroma's nearest by id without their metadata. A
        paper's chunks share its year, categories and sources, so one row decides the paper."""
        if filters is None or filters.is_empty() or not self.chunks:
            return None
        table, keep = self.chunks, self._mask(filters)

        def check(chunk_ids: Sequence[str]) -> list[bool | None]:
            out: list[bool | None] = []
            for cid in chunk_ids:
                j = table.paper_number(cid.rpartition("#")[0])
                out.append(None if j is None else bool(keep[table.first_chunk(j)]))
            return out

        return check

    def search(self, query: str, n: int, filters: Filters | None = None) -> list[tuple[Chunk, float]]:
        if not self.chunks:
            return []
        tokens = [self.corrected(_tokenize([query], False)[0])]
        if not tokens[0]:
            return []
        if filters is not None and not filters.is_empty():
            return self._filtered(tokens[0], n, self._mask(filters))
        ids, scores = self._retriever.retrieve(
            tokens, k=min(n, len(self.chunks)), show_progress=False, n_threads=1
        )
        return [(self.chunks[int(i)], float(s)) for i, s in zip(ids[0], scores[0]) if s > 0]

    def corrected(self, terms: list[str]) -> list[str]:
        """Terms the index lacks, replaced by a term it has in at least CORRECT_MIN_DF chunks:
        the British "-is" spelt "-iz" ("quantis" -> "quantiz"), else the nearest within one
        edit (two for 8+ letters; see text.edit_distance), the most frequent of equally near
        ones. "wat is the stabilty gap" searched "stabilti", which no chunk has, and found
        nothing on the stability gap; it now searches "stabil". A word the collection lacks
        and nothing near ("sourdough", "Korean") stays as it is."""
        out = []
        for term in terms:
            if len(term) < 6 or term in self._df or not term.isalpha():
                out.append(term)
                continue
            british = term[:-2] + "iz" if term.endswith("is") else ""  # "quantis(ation)"
            if self._df.get(british, 0) >= CORRECT_MIN_DF:
                out.append(british)
                continue
            limit = 1 if len(term) < 8 else 2
            near = [(d, c) for c in self._terms_by_letter.get(term[0], ())
                    if abs(len(c) - len(term)) <= limit
                    for d in (edit_distance(term, c, limit),) if d <= limit]
            out.append(max(near, key=lambda dc: (-dc[0], self._df[dc[1]]))[1] if near else term)
        return out

    def corrected_query(self, query: str) -> str:
        """The query with each misspelt word (one `corrected` changes) written as a word of the
        best-matching chunks that stems to the correction, one edit away: "wat is the
        stabilty gap" -> "wat is the stability gap", "quantisation" -> "quantization". MiniLM
        reads words, not stems: the misspelt question found nothing on the stability gap in
        meaning either (best similarity 0.13). The word is taken from chunk text, so it is
        one the collection writes (generated edits stemmed alike include "normalication")."""
        fixes = {}
        for word in dict.fromkeys(re.findall(r"[A-Za-z]{6,}", query)):
            stems = _tokenize([word], False)[0]
            if len(stems) == 1 and stems[0] not in self._df:
                target = self.corrected(stems)[0]
                if target != stems[0]:
                    fixes[word] = target
        if not fixes:
            return query
        seen = {w.lower() for chunk, _ in self.search(query, 5)
                for w in re.findall(r"[A-Za-z]{4,}", f"{chunk.title} {chunk.text}")}
        out = query
        for word, target in fixes.items():
            near = sorted(w for w in seen if edit_distance(word.lower(), w, 1) <= 1
                          and _tokenize([w], False)[0] == [target])
            if near:  # one edit, a typo's: "supervisor" is not "supervised" (chat-02)
                out = re.sub(rf"\b{word}\b", near[0], out)
        return out

    @cached_property
    def _terms_by_letter(self) -> dict[str, list[str]]:
        """Indexed terms in CORRECT_MIN_DF+ chunks, by first letter (built on first use)."""
        out: dict[str, list[str]] = {}
        for term, df in self._df.items():
            if df >= CORRECT_MIN_DF and term.isalpha():
                out.setdefault(term[0], []).append(term)
        return out

    def _filtered(self, terms: list[str], n: int, keep: np.ndarray) -> list[tuple[Chunk, float]]:
        """The n best of the chunks that pass, ranked among those alone. bm25s's weight_mask
        zeroes the rest and ranks all: with 1 chunk in 11 passing at 1M chunks its partition
        over mostly equal zeros took ~58 ms a search, against ~19 ms with half passing."""
        rows = np.flatnonzero(keep)
        ids = self._retriever.get_tokens_ids(terms)
        if not len(rows) or not ids:
            return []
        scores = self._retriever.get_scores_from_ids(ids)[rows]
        k = min(n, len(rows))
        top = np.argpartition(scores, -k)[-k:]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self.chunks[int(rows[i])], float(scores[i])) for i in top if scores[i] > 0]


class NameTable:
    """The names papers define and how many papers mention each, built one paper at a time."""

    def __init__(self) -> None:
        self._defined: dict[str, set[tuple[str, str]]] = {}
        self._mentions: Counter[str] = Counter()

    @staticmethod
    def _of(chunks: Sequence[Chunk]) -> tuple[set[str], set[str]]:
        title = chunks[0].title
        text = " ".join(c.text for c in chunks)
        tokens = _QUERY_TOKEN.findall(f"{title} {text}")
        return defined_names(title, text), {t.casefold() for t in tokens} | {_singular(t).casefold() for t in tokens}

    def add(self, paper_id: str, chunks: Sequence[Chunk]) -> None:
        """One paper, all its chunks in store order."""
        names, mentions = self._of(chunks)
        for name in names:
            self._defined.setdefault(name.casefold(), set()).add((name, paper_id))
        self._mentions.update(mentions)

    def remove(self, paper_id: str, chunks: Sequence[Chunk]) -> None:
        """Undo `add(paper_id, chunks)` (a refresh replacing or dropping the paper)."""
        names, mentions = self._of(chunks)
        for name in names:
            owners = self._defined.get(name.casefold(), set())
            owners.discard((name, paper_id))
            if not owners:
                self._defined.pop(name.casefold(), None)
        self._mentions.subtract(mentions)
        for m in mentions:
            if self._mentions[m] <= 0:
                del self._mentions[m]

    def result(self) -> dict[str, tuple[list[tuple[str, str]], int]]:
        return {k: (sorted(v), self._mentions[k]) for k, v in self._defined.items()}

    def write(self, folder: Path) -> None:
        """NAMES_FILE (what a search reads) and NAMES_STATE_FILE (what a refresh updates,
        bm25_update.py) into the index's folder, each swapped into place whole."""
        state, names = folder / f".{NAMES_STATE_FILE}.tmp", folder / f".{NAMES_FILE}.tmp"
        self.save(state)
        names.write_text(json.dumps(self.result(), ensure_ascii=False))
        os.replace(state, folder / NAMES_STATE_FILE)
        os.replace(names, folder / NAMES_FILE)

    def save(self, path: Path) -> None:
        """The whole table (every token's mention count too), for a refresh to update."""
        state = {"defined": {k: sorted(v) for k, v in self._defined.items()}, "mentions": self._mentions}
        path.write_text(json.dumps(state, ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> "NameTable":
        state = json.loads(path.read_text())
        table = cls()
        table._defined = {k: {(n, p) for n, p in v} for k, v in state["defined"].items()}
        table._mentions = Counter(state["mentions"])
        return table


@dataclass
class _PaperEvidence:
    chunks: dict[str, tuple[Chunk, float]]  # chunk_id -> (chunk, fused chunk score)
    dense: float | None = None  # best cosine similarity among the paper's chunks
    bm25: float | None = None  # best BM25 score among the paper's chunks
    fused: float = 0.0  # paper-level weighted RRF score


def _paper_ranks(results: list[tuple[Chunk, float]]) -> dict[str, int]:
    """paper_id -> 1-based rank of the paper's best chunk (results are sorted best first)."""
    ranks: dict[str, int] = {}
    for chunk, _ in results:
        ranks.setdefault(chunk.paper_id, len(ranks) + 1)
    return ranks


class Retriever:
    """Hybrid search over one store."""

    def __init__(self, settings: Settings, store: Store, embed: Callable, bm25: BM25Index) -> None:
        self.settings = settings
        self.store = store
        self._embed = embed
        self.embed = embed  # the query embedder, also used by the claim check
        self.bm25 = bm25

    def search(self, query: str, k: int | None = None, filters: Filters | None = None) -> list[Hit]:
        """The k best papers for `query`; none for a query of nothing but spaces (the dense
        side would still rank every paper by its distance to the empty string)."""
        s = self.settings
        k = k or s.k
        query = valid_text(query)  # the embedding tokenizer refuses lone surrogates
        if not query.strip():
            return []
        if filters is not None and (filters.category or filters.source):  # Chroma too
            filters = replace(filters, category=filters.category and valid_text(filters.category),
                              source=filters.source and valid_text(filters.source))
        query = self.bm25.corrected_query(query) if self.bm25 is not None else query
        vector = self._embed([query])[0]
        if self.store.server_search.available():  # probed once per client and collection
            fused = self.store.hybrid_query(vector, query, s.candidates, filters, rrf_k=s.rrf_k,
                                            dense_weight=s.dense_weight, bm25_weight=s.bm25_weight)
            if fused is not None:
                return self.server_hits(fused, k)
        dense = self.store.query(vector, s.candidates, filters, share=self.bm25.share(filters),
                                 passes=self.bm25.passes(filters))
        sparse = self.bm25.search(query, s.candidates, filters)
        return self.fuse(dense, sparse, k, query=query, filters=filters)

    def server_hits(self, fused: list[tuple[Chunk, float, float]], k: int) -> list[Hit]:
        """Papers ranked by their best chunk in the server's fused list (chroma_search.py).

        The server's RRF is chunk-level and has no title or name boosts; the scores are divided
        by the best possible (first in both lists), as `fuse` does."""
        s = self.settings
        best_possible = (s.dense_weight + s.bm25_weight) / (s.rrf_k + 1) or 1.0
        papers: dict[str, list] = {}
        for chunk, score, cosine in fused:
            entry = papers.setdefault(chunk.paper_id, [score, cosine, []])
            entry[1] = max(entry[1], cosine)
            entry[2].append(chunk)
        hits = []
        for rank, (paper_id, (score, cosine, chunks)) in enumerate(list(papers.items())[:k], start=1):
            first = chunks[0]
            hits.append(Hit(rank=rank, paper_id=paper_id, title=first.title, score=score / best_possible,
                            chunks=tuple(chunks), dense_similarity=cosine, bm25_score=None, year=first.year,
                            categories=first.categories, sources=first.sources))
        return hits

    def fuse(self, dense, sparse, k: int, query: str | None = None,
             filters: Filters | None = None) -> list[Hit]:
        """Weighted RRF of the two rankings, plus (given the query) the title and name boosts.

        Title boost: title_weight * (IDF-weighted share of the query's terms in the title), on
        the candidates either retriever found. Name boost: name_weight * (share of a name the
        query uses that the paper defines), for papers found or not. Both are scaled like a
        first rank, 1 / (rrf_k + 1), so a weight compares directly with dense/bm25_weight.
        """
        s = self.settings
        evidence: dict[str, _PaperEvidence] = {}
        # A BM25 rank counts in proportion to coverage**bm25_coverage_power of the query's terms.
        cov = (self.bm25.paper_coverage(query, sparse)
               if query and s.bm25_coverage_power > 0 and self.bm25 is not None else None)
        for results, weight, attr in ((dense, s.dense_weight, "dense"), (sparse, s.bm25_weight, "bm25")):
            ranks = _paper_ranks(results)
            for rank, (chunk, score) in enumerate(results, start=1):
                ev = evidence.setdefault(chunk.paper_id, _PaperEvidence({}))
                best = getattr(ev, attr)
                setattr(ev, attr, score if best is None else max(best, score))
                prev = ev.chunks.get(chunk.chunk_id, (chunk, 0.0))[1]
                ev.chunks[chunk.chunk_id] = (chunk, prev + weight / (s.rrf_k + rank))
            for paper_id, rank in ranks.items():
                scale = cov.get(paper_id, 0.0) ** s.bm25_coverage_power if attr == "bm25" and cov else 1.0
                evidence[paper_id].fused += weight * scale / (s.rrf_k + rank)
        first = 1.0 / (s.rrf_k + 1)
        best_possible = (s.dense_weight + s.bm25_weight) * first
        if query and self.bm25 is not None and self.bm25.chunks:
            if s.title_weight > 0:
                best_possible += s.title_weight * first
                for paper_id, share in self.bm25.title_match(query, list(evidence)).items():
                    evidence[paper_id].fused += s.title_weight * share * first
            named = self.bm25.named_papers(query, s.name_max_papers) if s.name_weight > 0 else {}
            if named:
                best_possible += s.name_weight * first
            for paper_id, share in named.items():
                chunks = self.bm25.paper_chunks.get(paper_id, [])
                if not chunks or not matches(chunks[0], filters):
                    continue
                ev = evidence.setdefault(paper_id, _PaperEvidence({}))
                for c in chunks:
                    ev.chunks.setdefault(c.chunk_id, (c, 0.0))
                ev.fused += s.name_weight * share * first
        best_possible = best_possible or 1.0
        ranked = sorted(evidence.items(), key=lambda kv: -kv[1].fused)[:k]
        hits = []
        for rank, (paper_id, ev) in enumerate(ranked, start=1):
            chunks = tuple(c for c, _ in sorted(ev.chunks.values(), key=lambda cs: -cs[1]))
            first_chunk = chunks[0]
            hits.append(Hit(
                rank=rank, paper_id=paper_id, title=first_chunk.title,
                score=ev.fused / best_possible, chunks=chunks,
                dense_similarity=ev.dense, bm25_score=ev.bm25, year=first_chunk.year,
                categories=first_chunk.categories, sources=first_chunk.sources,
            ))
        return hits
