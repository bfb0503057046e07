"""The only code that talks to Chroma: an embedded PersistentClient or a Chroma server.

Vectors are computed by us (assistant.embeddings) and passed in, so Chroma never builds an
embedding function of its own (its stock one would try to download a model). The collection's
metadata records the embedder (model, kind: in-process MiniLM or an endpoint, dimension) and the
chunking; opening it with other values fails with a line telling the user what to do. An
endpoint's dimension is known from its first vector: recorded by the first write, checked by
every write and query after it. An empty collection (a first ingest that failed) takes the
embedder of the next ingest.

Chunk metadata: paper_id, title, position, n_chunks, fingerprint, year, authors, url, and one
boolean key per category (`cat:cs.CL`) and per source file (`src:000_x.txt`), which lets Chroma
filter on membership with a plain equality `where`. The first chunk also holds the full abstract
and, where known, the paper's doi, arxiv_id (when its id does not say it), citekey and bibtex
(the original BibTeX entry). The collection's metadata records the last ingest's time.
"""

from __future__ import annotations

import math
import sqlite3
import struct
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from . import chroma_search
from .config import DEFAULT_LIBRARY, Settings
from .errors import (
    PapersError,
    StoreDamagedError,
    StoreMismatchError,
    StoreMissingError,
    StoreUnavailableError,
    store_message,
)
from .identity import implied_arxiv
from .store_guard import _Guarded, store_failure, translated  # noqa: F401 (re-exported)
from .store_records import (  # noqa: F401 (re-exported: the records and metadata of a chunk)
    _ALIASES,
    _FP,
    _LAST,
    _N,
    _PRESENT,
    _SEEN,
    _SOURCES,
    CAT,
    LOOKUP_IDS,
    SRC,
    PaperState,
    StoredChunk,
    Survey,
    _aliases,
    _count,
    _paper_fields,
    chunk_from,
    chunk_metadata,
    join_categories,
    matches,
    split_categories,
    where_filter,
)
from .types import Chunk, Filters, Paper

SCHEMA = 1
# Store.query with filters on a big store: ask for 8 x n unfiltered, then 32 x n, and keep those
# that pass; from POST_FILTER_MIN chunks up (below it Chroma's own `where` is fast: 8 ms at 704).
# At 1M chunks, 8 x: 103-139 ms a search; 32 x: 223-268 ms; Chroma's `where`: 2.9 s for a
# filter half pass, 0.84 s for one a 1 in 11 pass (benchmarks/README.md, 5e). Given the share
# of chunks that pass (the caller's BM25 table knows it exactly), one query of
# OVERSAMPLE_MARGIN x n / share nearest is asked first: n / share of the nearest hold ~n that
# pass, and the margin covers the spread (with n = 50 and share 1/11: 825 nearest, ~75 pass,
# 50 needed, 3.6 standard deviations away); 32 x n when that is short.
OVERSAMPLE = (8, 32)
OVERSAMPLE_MARGIN = 1.5
POST_FILTER_MIN = 50_000
# Chroma's embedded client waits forever for a database another process holds locked (seen with
# an open `BEGIN EXCLUSIVE`); our probe gives up after this many seconds with a clear line.
LOCK_WAIT_S = 5.0
# Tables every Chroma database holds; a SQLite file without them is no store (an emptied copy).
_CHROMA_TABLES = ("collections", "segments", "embeddings")
# The collection metadata that says how its vectors were made (Store.expected_metadata).
_SHAPE = ("embedding_model", "embedding_kind", "dimension", "chunk_size", "chunk_overlap")
_NO_VECTOR = "Error finding id"  # Chroma's answer for a chunk whose vector is not in the index


def probe(db: Path, write: bool) -> None:
    """Check an embedded store's SQLite file before Chroma opens it.

    Raises StoreBusyError when another process holds it locked for LOCK_WAIT_S, StoreDamagedError
    when it is empty, not a database, holds no Chroma tables (an emptied copy: Chroma would
    quietly make a new store in it) or is shorter than its header says (a truncated copy),
    StoreWriteError when `write` and it cannot be written. A read-only probe opens the file
    read-only: looking writes nothing.
    """
    where = str(db.parent)
    if db.stat().st_size == 0:
        raise StoreDamagedError(store_message("damaged", where))
    with translated(where):
        uri = f"{db.resolve().as_uri()}?mode={'rw' if write else 'ro'}"
        con = sqlite3.connect(uri, uri=True, timeout=LOCK_WAIT_S, isolation_level=None)
        try:
            # A read under a SHARED lock: no writer can commit while the header is compared.
            con.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            tables = {name for name, in con.execute("SELECT name FROM sqlite_master")}
            with open(db, "rb") as fh:
                header = fh.read(100)
            page_size, = struct.unpack(">H", header[16:18])
            page_size = 65536 if page_size == 1 else page_size
            counter, pages, valid_for = struct.unpack(">I", header[24:28]) + struct.unpack(
                ">I", header[28:32]) + struct.unpack(">I", header[92:96])
            if (counter == valid_for and pages * page_size > db.stat().st_size) or not all(
                    t in tables for t in _CHROMA_TABLES):
                raise StoreDamagedError(store_message("damaged", where))
            con.execute("ROLLBACK")
        finally:
            con.close()


def _set_aside(store_dir: Path) -> Path:
    """Move a damaged store folder to `<name>.damaged-<time>` beside it; returns the new path.

    The writer lock the caller holds moves back into the new, empty folder: an open file keeps
    its flock across a rename, so a second writer still finds it held.
    """
    import time

    from .writer import LOCK_NAME

    aside = store_dir.with_name(f"{store_dir.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    store_dir.rename(aside)
    # Chroma keeps one client per folder in a process: forget the one of the damaged database,
    # or the new store at this path would be opened through it.
    from .chroma_import import prepare

    prepare()
    from chromadb.api.shared_system_client import SharedSystemClient

    getattr(SharedSystemClient, "_identifier_to_system", {}).pop(str(store_dir), None)
    if (aside / LOCK_NAME).exists():
        store_dir.mkdir()
        (aside / LOCK_NAME).rename(store_dir / LOCK_NAME)
    return aside


def _client(settings: Settings, write: bool = False):
    from .chroma_import import prepare

    prepare()
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        headers = {"x-chroma-token": settings.chroma_token} if settings.chroma_token else None
        try:
            return chromadb.HttpClient(
                host=url.hostname or "localhost",
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                headers=headers,
                settings=chroma_settings,
            )
        except Exception as exc:  # chromadb raises plain ValueError/ConnectError here
            raise StoreUnavailableError(
                f"cannot reach the Chroma server at {settings.chroma_url} ({type(exc).__name__}): "
                "start it with `chroma run --path DIR` or fix PAPERS_CHROMA_URL"
            ) from None
    where = str(settings.store_dir)
    with translated(where):
        settings.store_dir.mkdir(parents=True, exist_ok=True)
    db = settings.store_dir / "chroma.sqlite3"
    if db.exists():
        probe(db, write)
    with translated(where):
        return chromadb.PersistentClient(path=where, settings=chroma_settings)


def describe_location(settings: Settings) -> str:
    return settings.chroma_url or str(settings.store_dir.resolve())


def embedder_mismatch(settings: Settings, actual: dict, expected: dict) -> str:
    """The one line refusing to search or write a store with another embedder than its own."""
    def name(meta: dict) -> str:
        dims = f", {meta['dimension']} dimensions" if meta.get("dimension") else ""
        return f"{meta.get('embedding_model')} ({meta.get('embedding_kind')}{dims})"

    back = ("unset PAPERS_EMBED_BASE_URL" if actual.get("embedding_kind") == "in-process"
            else f"set PAPERS_EMBED_BASE_URL and PAPERS_EMBED_MODEL={actual.get('embedding_model')}")
    return (f"the store at {describe_location(settings)} was embedded with {name(actual)}, not "
            f"{name(expected)}: {back} again, or re-embed it with `papers ingest --rebuild`")


class Store:
    """A Chroma collection of chunks with our consistency rules around it."""

    def __init__(self, settings: Settings, collection, client) -> None:
        self.settings = settings
        where = describe_location(settings)
        self._collection = collection if isinstance(collection, _Guarded) else _Guarded(collection, where)
        self._client = client
        self._cache_dir: Path | None = None  # a server's client cache folder (local_dir)

    # --- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, settings: Settings, *, create: bool = False) -> "Store":
        """Open the collection; with create=False a missing or empty store is an error."""
        from .chroma_import import prepare

        prepare()  # before chromadb's first import, which this one may be
        from chromadb.errors import NotFoundError

        if not create and not settings.chroma_url and not (settings.store_dir / "chroma.sqlite3").exists():
            raise cls.missing_error(settings)
        client = _client(settings, write=create)
        expected = cls.expected_metadata(settings)
        where = describe_location(settings)
        try:
            with translated(where):
                collection = client.get_collection(settings.collection, embedding_function=None)
        except NotFoundError:
            if not create:
                raise cls.missing_error(settings) from None
            with translated(where):
                # With the server's BM25 sparse index where it takes one (chroma_search.py).
                collection = chroma_search.create_collection(
                    client,
                    settings.collection,
                    embedding_function=None,
                    metadata={**expected, "generation": uuid.uuid4().hex},
                    configuration={"hnsw": {"space": "cosine", "ef_search": settings.hnsw_ef_search}},
                )
        except PapersError:
            raise
        except Exception as exc:
            raise StoreUnavailableError(
                f"cannot open the store at {describe_location(settings)} ({exc}); "
                "check PAPERS_CHROMA_URL / PAPERS_STORE_DIR"
            ) from None
        try:
            cls._check_compatible(collection.metadata or {}, expected, settings)
        except StoreMismatchError:
            with translated(where):
                if not create or collection.count():
                    raise
                # Empty (a first ingest that failed before its first write): nothing to mix, so
                # it takes the embedder and chunking of the ingest that writes it now.
                kept = {k: v for k, v in (collection.metadata or {}).items() if k not in _SHAPE}
                collection.modify(metadata={**kept, **expected})
        return cls(settings, collection, client)

    @staticmethod
    def expected_metadata(settings: Settings) -> dict[str, Any]:
        from .embeddings import embedder_identity

        embedder = {k: v for k, v in embedder_identity(settings).items() if v is not None}
        return {"schema": SCHEMA, **embedder, "chunk_size": settings.chunk_size,
                "chunk_overlap": settings.chunk_overlap}

    @staticmethod
    def missing_error(settings: Settings) -> StoreMissingError:
        """The error for a store that does not exist or holds nothing: says how to build it."""
        name = settings.library
        if settings.store_origin == "library" and name != DEFAULT_LIBRARY and not settings.chroma_url:
            return StoreMissingError(
                f"no library named {name} at {describe_location(settings)}: build it with "
                f"`papers ingest --library {name} FILE...` (`papers libraries` lists the libraries)"
            )
        return StoreMissingError(
            f"no paper store at {describe_location(settings)}: build it with `papers ingest` "
            "(the bundled collection) or `papers ingest PATH...`"
        )

    @staticmethod
    def _check_compatible(actual: dict, expected: dict, settings: Settings) -> None:
        from .embeddings import IN_PROCESS

        # Stores written before embedders had kinds were all written by the in-process MiniLM.
        actual = {"embedding_kind": IN_PROCESS, **actual}
        diffs = [f"{k}={actual.get(k)!r} (now {v!r})" for k, v in expected.items() if actual.get(k) != v]
        if any(k in ("embedding_model", "embedding_kind") for k in expected if actual.get(k) != expected[k]):
            raise StoreMismatchError(embedder_mismatch(settings, actual, expected))
        if diffs:
            raise StoreMismatchError(
                f"the store at {describe_location(settings)} was built with {', '.join(diffs)}: "
                "re-ingest with `papers ingest --rebuild` (or restore the old settings)"
            )

    def check_dimension(self, n: int, record: bool = False) -> None:
        """Refuse vectors of another length than the store's; `record`: the first write of an
        endpoint's store records its dimension."""
        meta = self._collection.metadata or {}
        if meta.get("dimension") is None:
            if record:
                self._set_metadata(dimension=n)
            return
        if int(meta["dimension"]) != n:
            from .embeddings import embedder_identity

            now = {**embedder_identity(self.settings), "dimension": n}
            raise StoreMismatchError(embedder_mismatch(self.settings, meta, now))

    @classmethod
    def delete(cls, settings: Settings) -> None:
        """Drop the collection (for --rebuild); a missing one is fine."""
        from .chroma_import import prepare

        prepare()  # before chromadb's first import, which this one may be
        from chromadb.errors import NotFoundError

        if not settings.chroma_url and not settings.store_dir.exists():
            return
        try:
            with translated(describe_location(settings)):
                _client(settings, write=True).delete_collection(settings.collection)
        except NotFoundError:
            pass

    # --- rebuilding --------------------------------------------------------------------------
    @staticmethod
    def staging_settings(settings: Settings) -> Settings:
        """Settings naming the collection a rebuild writes into before it is swapped in.

        One fixed name, so a rebuild stopped midway resumes there on the next `--rebuild`
        (a leftover built with other settings is dropped by `open_staging`).
        """
        return settings.model_copy(update={"collection": f"{settings.collection}-rebuild"})

    @classmethod
    def open_staging(cls, settings: Settings) -> "Store":
        """The rebuild's collection (created, or resumed when compatible); the live one is untouched."""
        staging = cls.staging_settings(settings)
        try:
            return cls.open(staging, create=True)
        except StoreMismatchError:  # a leftover of a rebuild with other settings
            cls.delete(staging)
        except StoreDamagedError:
            if settings.chroma_url:
                raise
            _set_aside(settings.store_dir)  # unreadable anyway: kept for forensics, not deleted
        return cls.open(staging, create=True)

    def swap_into(self, settings: Settings) -> "Store":
        """Make this (staging) collection the live one named by `settings`; returns it reopened.

        Chroma renames a collection in its metadata only (segments are keyed by uuid). Between
        the delete and the rename a reader would find no store for a few milliseconds; a process
        killed exactly there leaves the finished build under the staging name, and the next
        `papers ingest --rebuild` resumes it (all unchanged) and swaps it in.
        """
        self.delete(settings)
        self._collection.modify(name=settings.collection)
        return type(self).open(settings)

    # --- reading ---------------------------------------------------------------------------
    @property
    def generation(self) -> str:
        """Changes whenever the contents change; keys the BM25 index cached beside the store."""
        return str((self._collection.metadata or {}).get("generation", ""))

    @property
    def revision(self) -> int:
        """A counter bumped with the generation; every chunk written carries the revision it
        was written at (metadata `rev`), so a client's index refreshes from `chunks_since`.
        0 for a store written before revisions existed (its chunks have no `rev`)."""
        return int((self._collection.metadata or {}).get("revision", 0))

    @property
    def collection_id(self) -> str:
        """Chroma's id of the collection: a rebuild swapped in is another collection."""
        return str(self._collection.id)

    def chunks_since(self, revision: int) -> Iterator[list[Chunk]]:
        """Pages of the chunks written at `revision` or later (`rev` >= it)."""
        for got in self._pages(["metadatas", "documents"], where={"rev": {"$gte": revision}}):
            yield [chunk_from(cid, doc, meta)
                   for cid, doc, meta in zip(got["ids"], got["documents"], got["metadatas"])]

    def chunk_ids(self) -> Iterator[str]:
        """Every chunk's id (`<paper id>#<position>`; no text or metadata: ~40 bytes a chunk on
        the wire), 10,000 a page."""
        for got in self._pages([], page=10_000):
            yield from got["ids"]

    def chunks_by_id(self, ids: Sequence[str]) -> list[Chunk]:
        out: list[Chunk] = []
        for i in range(0, len(ids), 1000):
            got = self._collection.get(ids=list(ids[i : i + 1000]), include=["metadatas", "documents"])
            out += [chunk_from(cid, doc, meta)
                    for cid, doc, meta in zip(got["ids"], got["documents"], got["metadatas"])]
        return out

    def count(self) -> int:
        return self._collection.count()

    @property
    def ef_search(self) -> int:
        """The collection's HNSW ef_search: candidates a query visits (>= size: exact search)."""
        return int(((self._collection.configuration or {}).get("hnsw") or {}).get("ef_search", 0))

    def _pages(self, include: list[str], where=None, page: int = 1000,
               vectors: bool = False) -> Iterator[dict]:
        """The collection `page` chunks at a time; with `vectors`, each page also says which of
        its chunks have no vector (`got["no_vector"]`, see `_without_vector`)."""
        # 1,000 a page: Chroma builds ~32 KB of results a chunk while a page is read (~160 MB
        # at 5,000), and offset paging costs little at this size (benchmarks/README.md, 5).
        offset = 0
        while True:
            if vectors:
                got = self._page_with_vectors(include, page, offset, where)
            else:
                got = self._collection.get(include=include, where=where, limit=page, offset=offset)
            if got["ids"]:
                yield got
            if len(got["ids"]) < page:  # the last page: no empty query after it (~10-40 ms)
                return
            offset += len(got["ids"])

    def _page_with_vectors(self, include: list[str], page: int, offset: int, where=None) -> dict:
        """Chroma keeps a chunk's text and metadata in SQLite and its vector in the HNSW index;
        two writers at once could leave a chunk in the first and not the second (reading its
        vector answers "Error finding id", and dense search never finds it). Reading the
        vectors with the metadata costs ~5% more (704 chunks: 62 -> 65 ms); a page that fails
        is read again without them and split in halves until its chunks without one are found.
        """
        try:
            got = self._collection.get(include=[*include, "embeddings"], where=where, limit=page,
                                       offset=offset)
            got["no_vector"] = set()
        except Exception as exc:
            if _NO_VECTOR not in str(exc):
                raise
            got = self._collection.get(include=include, where=where, limit=page, offset=offset)
            got["no_vector"] = set(self._without_vector(got["ids"]))
        got["embeddings"] = None  # not kept: ~1.5 KB a chunk
        return got

    def _without_vector(self, ids: list[str]) -> list[str]:
        try:
            self._collection.get(ids=ids, include=["embeddings"])
            return []
        except Exception as exc:
            if _NO_VECTOR not in str(exc):
                raise
        if len(ids) == 1:
            return ids
        half = len(ids) // 2
        return self._without_vector(ids[:half]) + self._without_vector(ids[half:])

    def paper_states(self, paper_ids: Iterable[str] | None = None, *,
                     vectors: bool = True) -> dict[str, PaperState]:
        """Per stored paper of `paper_ids` (absent: not stored): stored fingerprint, how many of
        its chunks are present (with a vector: see `_page_with_vectors`), its sources, aliases.

        Read `LOOKUP_IDS` papers a query (`where paper_id $in`). None reads every paper: for
        tests and small stores only; ingest and `papers check` never hold every paper's state
        (ingest looks up each batch's papers, check uses `survey`).

        `vectors=False` reads no vector and counts every chunk present: for a caller that has
        already found and repaired the chunks without one (ingest, after `survey`). Reading the
        vectors made a lookup ~1.5x as slow (benchmarks/README.md, 5d).
        """
        return {pid: PaperState(*st[:_SEEN]) for pid, st in self._states(paper_ids, vectors).items()}

    def _states(self, paper_ids: Iterable[str] | None, vectors: bool = True) -> dict[str, list]:
        states: dict[str, list] = {}
        names: dict[str, str] = {}
        ids = None if paper_ids is None else sorted(set(paper_ids))
        wheres = [None] if ids is None else [{"paper_id": {"$in": ids[i : i + LOOKUP_IDS]}}
                                             for i in range(0, len(ids), LOOKUP_IDS)]
        for where in wheres:
            for got in self._pages(["metadatas"], where=where, vectors=vectors):
                no_vector = got.get("no_vector", ())
                for cid, meta in zip(got["ids"], got["metadatas"]):
                    _count(states, meta, cid not in no_vector, names)
        return states

    def survey(self) -> Survey:
        """Count the papers and find chunks without a vector and unfinished papers, in one pass
        over every chunk (with vectors) that keeps only the papers still short of chunks.

        A paper's state is dropped once it has all its chunks of one version; Chroma returns a
        paper's chunks together (written in one upsert), so few are held at once. The chunks of
        an unfinished paper may be apart (a later version's chunks after the stale ones of an
        older one): those few are read again whole (`_states`), and a paper whose full state
        holds more chunks than were held for it was already counted when it was dropped.
        """
        held: dict[str, list] = {}
        names: dict[str, str] = {}
        dropped, lost = 0, []
        for got in self._pages(["metadatas"], vectors=True):
            for cid, meta in zip(got["ids"], got["metadatas"]):
                if cid in got["no_vector"]:
                    lost.append(cid)
                if (st := _count(held, meta, cid not in got["no_vector"], names))[_SEEN] == st[_N]:
                    dropped += 1
                    del held[meta["paper_id"]]
        whole = self._states(held)
        again = sum(1 for pid, st in whole.items() if st[_SEEN] > held[pid][_SEEN])
        return Survey(dropped + len(held) - again, lost,
                      {pid: PaperState(*st[:_SEEN]) for pid, st in whole.items()})

    def aliases(self) -> dict[str, str]:
        """Identity -> paper id for the identities stored papers have besides their ids (a DOI
        of an `arxiv:` paper), from the first chunks. Ingest reads it only when a paper it reads
        is found under none of its own ids (a new paper): then the store's papers with a DOI or
        arXiv id besides their id (~60 bytes an entry) are held, not every paper's state."""
        found: dict[str, str] = {}
        for got in self._pages(["metadatas"], where={"position": 0}):
            for meta in got["metadatas"]:
                found.update((a, meta["paper_id"]) for a in _aliases(meta))
        return found

    def paper_count(self) -> int:
        """Papers stored, counted by their first chunks (ids only: no metadata is read)."""
        return sum(len(got["ids"]) for got in self._pages([], where={"position": 0}))

    def source_counts(self) -> tuple[int, dict[str, tuple[int, int]]]:
        """(papers, {source file: (papers, chunks)}) from one pass over the chunks' metadata.

        A paper is counted by its first chunk; a paper read from two files counts in both.
        """
        papers = 0
        counts: dict[str, list[int]] = {}
        for got in self._pages(["metadatas"]):
            for meta in got["metadatas"]:
                first = int(meta["position"]) == 0
                papers += first
                for source in filter(None, meta.get("sources", "").split("\n")):
                    entry = counts.setdefault(source, [0, 0])
                    entry[0] += first
                    entry[1] += 1
        return papers, {s: (p, c) for s, (p, c) in sorted(counts.items())}

    def chunks_without_vector(self) -> list[Chunk]:
        """Stored chunks whose vector is missing (see `_page_with_vectors`)."""
        out: list[Chunk] = []
        for got in self._pages(["metadatas", "documents"], vectors=True):
            out += [chunk_from(cid, doc, meta) for cid, doc, meta
                    in zip(got["ids"], got["documents"], got["metadatas"]) if cid in got["no_vector"]]
        return out

    def restore_vectors(self, chunks: Sequence[Chunk], vectors) -> None:
        """Write the vectors of chunks that lost theirs, keeping their stored text and metadata."""
        if len(chunks):
            self.check_dimension(len(vectors[0]), record=True)
        for i in range(0, len(chunks), self.max_batch):
            part = chunks[i : i + self.max_batch]
            got = self._collection.get(ids=[c.chunk_id for c in part], include=["metadatas", "documents"])
            stored = dict(zip(got["ids"], zip(got["documents"], got["metadatas"])))
            keep = [j for j, c in enumerate(part) if c.chunk_id in stored]  # deleted meanwhile: skip
            if not keep:
                continue
            self._collection.upsert(
                ids=[part[j].chunk_id for j in keep],
                embeddings=[list(map(float, vectors[i + j])) for j in keep],
                documents=[stored[part[j].chunk_id][0] for j in keep],
                metadatas=[stored[part[j].chunk_id][1] for j in keep],
            )

    def iter_chunk_pages(self, page: int = 1000) -> Iterator[list[Chunk]]:
        """Every chunk, `page` at a time, in the store's order."""
        for got in self._pages(["metadatas", "documents"], page=page):
            yield [chunk_from(cid, doc, meta)
                   for cid, doc, meta in zip(got["ids"], got["documents"], got["metadatas"])]

    def iter_chunks(self) -> Iterator[Chunk]:
        for page in self.iter_chunk_pages():
            yield from page

    def query(self, embedding, n: int, filters: Filters | None = None, share: float | None = None,
              passes: Callable[[Sequence[str]], list[bool | None]] | None = None,
              ) -> list[tuple[Chunk, float]]:
        """Nearest chunks with cosine similarity (1 - cosine distance), best first. Where the
        caller knows them: `share`, the fraction of chunks that pass `filters` (sizes the
        query), and `passes`, which of some chunk ids pass (None: unknown), so the nearest are
        filtered by id before any metadata is read."""
        # Chroma returns fewer than n_results when the store is smaller: no count() round trip
        # (7-10 ms per query at 100k chunks).
        self.check_dimension(len(embedding))  # the collection's metadata: no round trip
        if filters is not None and not filters.is_empty():
            found = self._post_filtered(embedding, n, filters, share, passes)
            if found is not None:
                return found
        got = self._collection.query(
            query_embeddings=[embedding], n_results=n, where=where_filter(filters),
            include=["metadatas", "documents", "distances"],
        )
        return [
            (chunk_from(cid, doc, meta), 1.0 - float(dist))
            for cid, doc, meta, dist in zip(
                got["ids"][0], got["documents"][0], got["metadatas"][0], got["distances"][0]
            )
        ]

    def _post_filtered(self, embedding, n: int, filters: Filters, share: float | None = None,
                       passes: Callable[[Sequence[str]], list[bool | None]] | None = None,
                       ) -> list[tuple[Chunk, float]] | None:
        """The n nearest that pass `filters`, from an unfiltered query of 8 x n nearest (or
        OVERSAMPLE_MARGIN x n / share), else of 32 x n; None when fewer pass (a narrow filter:
        Chroma's `where` then finds them).

        Chroma applies a `where` before its HNSW search: at 1,000,000 chunks a filter that half
        of them pass ("year >= 2020") took 2.9 s a query against 32 ms unfiltered (benchmarks/
        README.md, 5e). The first n that pass among the nearest are the filtered nearest. Only
        for stores above POST_FILTER_MIN chunks, where the `where` is what costs."""
        if self._chunk_count() < POST_FILTER_MIN:
            return None
        factors = OVERSAMPLE
        if share is not None and share > 0:
            first = math.ceil(OVERSAMPLE_MARGIN / share)
            factors = (first,) + tuple(f for f in OVERSAMPLE if f > first) if first <= OVERSAMPLE[-1] else ()
        for factor in factors:
            if passes is not None:
                kept = self._nearest_passing(embedding, n, n * factor, filters, passes)
                if len(kept) == n:
                    return kept  # read with their texts
            else:
                got = self._collection.query(query_embeddings=[embedding], n_results=n * factor,
                                             include=["metadatas", "distances"])
                kept = [(chunk_from(cid, "", meta), 1.0 - float(dist)) for cid, meta, dist in zip(
                    got["ids"][0], got["metadatas"][0], got["distances"][0])]
                kept = [(c, sim) for c, sim in kept if matches(c, filters)][:n]
            if len(kept) == n:
                break
        else:
            return None
        texts = self._collection.get(ids=[c.chunk_id for c, _ in kept], include=["documents"])
        docs = dict(zip(texts["ids"], texts["documents"]))
        return [(replace(c, text=docs[c.chunk_id]), sim) for c, sim in kept]

    def _nearest_passing(self, embedding, n: int, k: int, filters: Filters,
                         passes: Callable[[Sequence[str]], list[bool | None]]) -> list[tuple[Chunk, float]]:
        """The first n of the k nearest that pass, with their texts: filtered by id (`passes`),
        then checked on their metadata, which is read for those n only. At 1M chunks Chroma's
        825 nearest take 23 ms as ids and 140 ms with their metadata (benchmarks/README.md, 5h).
        Fewer than n when fewer pass. A chunk `passes` does not know (None) is checked on its
        metadata like the others."""
        got = self._collection.query(query_embeddings=[embedding], n_results=k, include=["distances"])
        ids, dists = got["ids"][0], got["distances"][0]
        maybe = [(cid, d) for cid, d, ok in zip(ids, dists, passes(ids)) if ok is not False][:n]
        if not maybe:
            return []
        got = self._collection.get(ids=[cid for cid, _ in maybe], include=["metadatas", "documents"])
        read = {cid: (doc, meta) for cid, doc, meta in zip(got["ids"], got["documents"], got["metadatas"])}
        kept = [(chunk_from(cid, *read[cid]), 1.0 - float(d)) for cid, d in maybe if cid in read]
        return [(c, sim) for c, sim in kept if matches(c, filters)]

    def _chunk_count(self) -> int:
        """count(), once per Store: only to choose how to filter (81 ms at 1M chunks)."""
        if "_count" not in self.__dict__:
            self.__dict__["_count"] = self._collection.count()
        return self.__dict__["_count"]

    @property
    def server_search(self) -> chroma_search.ServerSearch:
        """Hybrid search in the server: `.available()` probes once (chroma_search.py)."""
        if "_server_search" not in self.__dict__:
            inner = self._collection._inner
            self.__dict__["_server_search"] = chroma_search.ServerSearch(
                inner, self.local_dir() / "server-search.json" if self.settings.chroma_url else None)
        return self.__dict__["_server_search"]

    def hybrid_query(self, embedding, query: str, n: int, filters: Filters | None = None,
                     **weights) -> list[tuple[Chunk, float, float]] | None:
        """Dense + BM25 fused in the server: [(chunk, fused score, cosine similarity)], best
        first; None where the server cannot (the caller searches on the client side)."""
        self.check_dimension(len(embedding))
        with translated(describe_location(self.settings)):
            got = self.server_search.hybrid(embedding, query, n, where_filter(filters), **weights)
        return None if got is None else [(chunk_from(cid, doc, meta), score, cosine)
                                         for cid, doc, meta, score, cosine in got]

    def paper(self, paper_id: str) -> Paper | None:
        """The full record of one paper (abstract from its first chunk)."""
        got = self._collection.get(ids=[f"{paper_id}#0"], include=["metadatas"])
        if not got["ids"]:
            return None
        meta = got["metadatas"][0]
        return Paper(
            paper_id=paper_id,
            title=meta["title"],
            abstract=meta.get("abstract", ""),
            authors=tuple(a for a in meta.get("authors", "").split(", ") if a),
            year=meta.get("year"),
            url=meta.get("url") or None,
            categories=split_categories(meta.get("categories", "")),
            sources=tuple(s for s in meta.get("sources", "").split("\n") if s),
            doi=meta.get("doi") or None,
            arxiv_id=meta.get("arxiv_id") or implied_arxiv(paper_id),
            citekey=meta.get("citekey") or None,
            bibtex=meta.get("bibtex") or None,
        )

    # --- writing ---------------------------------------------------------------------------
    @property
    def max_batch(self) -> int:
        try:
            return int(self._client.get_max_batch_size())
        except Exception:  # older servers do not report it
            return 1000

    def upsert(self, chunks: Sequence[Chunk], embeddings, metadatas: Sequence[dict]) -> None:
        """Upsert in batches no larger than the client's max batch size."""
        if len(chunks):
            self.check_dimension(len(embeddings[0]), record=True)
        step = self.max_batch
        rev = self.revision  # what a client's refresh asks for (chunks_since)
        for i in range(0, len(chunks), step):
            part = chunks[i : i + step]
            self._collection.upsert(
                ids=[c.chunk_id for c in part],
                embeddings=[list(map(float, e)) for e in embeddings[i : i + step]],
                documents=[c.text for c in part],
                metadatas=[{**m, "rev": rev} for m in metadatas[i : i + step]],
            )

    def delete_chunks(self, chunk_ids: Iterable[str]) -> None:
        ids = list(chunk_ids)
        for i in range(0, len(ids), self.max_batch):
            self._collection.delete(ids=ids[i : i + self.max_batch])

    def chunk_ids_of(self, paper_ids: Iterable[str]) -> list[str]:
        wanted = set(paper_ids)
        out: list[str] = []
        for got in self._pages(["metadatas"]):
            out += [cid for cid, m in zip(got["ids"], got["metadatas"]) if m["paper_id"] in wanted]
        return out

    def bump_generation(self) -> None:
        self._set_metadata(generation=uuid.uuid4().hex, revision=self.revision + 1)

    def _set_metadata(self, **values: Any) -> None:
        meta = dict(self._collection.metadata or {})
        meta.update(values)
        self._collection.modify(metadata=meta)

    def record_ingest(self, when: str) -> None:
        """Remember when an ingest last finished (ISO 8601, UTC): `papers stats` shows it."""
        self._set_metadata(last_ingest=when)

    @property
    def last_ingest(self) -> str | None:
        return (self._collection.metadata or {}).get("last_ingest")

    def local_dir(self) -> Path:
        """Where derived indexes (BM25) are kept: beside the store, or in the cache for a server.

        For a server, keyed by the collection's id, not the URL: the same collection reached by
        another address (a moved server, "localhost" for "127.0.0.1", a tunnel) keeps its index
        (building it again costs ~11 min at 1M chunks, benchmarks/README.md 5g), and a rebuilt
        collection (a new id) gets a new folder; folders unused for 30 days are removed
        (client_cache.py)."""
        if not self.settings.chroma_url:
            return self.settings.store_dir
        if self._cache_dir is None or not self._cache_dir.is_dir():
            from .client_cache import collection_dir

            self._cache_dir = collection_dir(self.settings.cache_dir, self.settings.chroma_url,
                                             self.settings.collection, self.collection_id)
        return self._cache_dir


class WriterLeases:
    """The writer lease of a store on a Chroma server (writer.py): one record, id "writer", in
    the collection `<collection>-writer`, holding who writes and until when.

    `claim` relies on Chroma's `add` keeping an existing id as it is, so of two writers that
    claim at once exactly one record survives; each then reads it back to see whose it is.
    """

    ID = "writer"

    def __init__(self, settings: Settings) -> None:
        self.where = describe_location(settings)
        with translated(self.where):
            self._collection = _client(settings, write=True).get_or_create_collection(
                f"{settings.collection}-writer", embedding_function=None)

    def current(self) -> dict | None:
        with translated(self.where):
            got = self._collection.get(ids=[self.ID], include=["metadatas"])
        return dict(got["metadatas"][0]) if got["ids"] else None

    def claim(self, record: dict) -> dict:
        """Add `record` unless a lease exists; returns the lease that holds now."""
        with translated(self.where):
            self._collection.add(ids=[self.ID], embeddings=[[1.0]], metadatas=[record])
        return self.current() or record

    def renew(self, token: str, expires: float) -> dict | None:
        """Extend our lease; returns None, or the holder when the lease is no longer ours."""
        holder = self.current()
        if holder is None or holder.get("token") != token:
            return holder or {"command": "nobody (our lease was removed)"}
        with translated(self.where):
            self._collection.update(ids=[self.ID], metadatas=[{**holder, "expires": expires}])
        return None

    def remove(self, token: str) -> None:
        """Delete the lease if it is `token`'s (a conditional delete: never another's)."""
        with translated(self.where):
            self._collection.delete(ids=[self.ID], where={"token": token})
