"""Failures a user can cause or meet: each is one line on stderr, a non-zero exit, no traceback,
and no paper lost.

The CLI runs in-process (`cli.main` with sys.argv) with a deterministic cheap embedding, so the
faults are real (a read-only bind mount, a tmpfs that fills up, an sqlite lock, a truncated
file) and the tests stay fast. Mount tests skip where mounting is not permitted; each fault also
has a variant injected at the write call, so it is covered everywhere.
"""

from __future__ import annotations

import errno
import hashlib
import json
import shutil
import sqlite3
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from assistant import cli
from assistant import store as store_mod
from assistant.config import Settings
from assistant.errors import AssetError, user_message
from assistant.ingest import ingest
from assistant.retrieval import BM25Index
from assistant.store import Store

# --------------------------------------------------------------------------- helpers


def cheap_embed(texts):
    """Deterministic unit vectors from a hash (tests only: the faults here are not about meaning)."""
    out = np.empty((len(texts), 384), dtype=np.float32)
    for i, text in enumerate(texts):
        seed = int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "little")
        out[i] = np.random.default_rng(seed).normal(size=384)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.fixture(autouse=True)
def _cheap_model(monkeypatch):
    import assistant.embeddings as embeddings

    monkeypatch.setattr(embeddings, "make_embedding_function", lambda settings, **options: cheap_embed)
    monkeypatch.setattr(store_mod, "LOCK_WAIT_S", 0.5)  # a held lock fails after 0.5 s, not 5


@pytest.fixture(autouse=True)
def _fresh_chroma():
    """Chroma caches one client per path in a process; a remounted folder needs a new one."""
    from chromadb.api.shared_system_client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
    yield
    SharedSystemClient.clear_system_cache()


def run(capsys, monkeypatch, store_dir: Path, *args: str) -> tuple[int, str, str]:
    """`papers ARGS` in-process: (exit code, stdout, stderr)."""
    from chromadb.api.shared_system_client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
    monkeypatch.setenv("PAPERS_STORE_DIR", str(store_dir))
    monkeypatch.setattr("sys.argv", ["papers", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        cli.main()
    out, err = capsys.readouterr()
    return info.value.code, out, err


def one_line_error(code: int, err: str, *needles: str) -> str:
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("stored ")]
    assert code not in (0, None), err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def write_corpus(path: Path, n: int, prefix: str = "Walrus study") -> Path:
    rows = [{"title": f"{prefix} {i}", "abstract": f"We study walrus acoustics number {i} in the "
             f"Arctic with hydrophones and report {i % 7} findings about calls."} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def settings_for(store_dir: Path) -> Settings:
    import os

    return Settings(store_dir=store_dir, cache_dir=Path(os.environ["PAPERS_CACHE_DIR"]))


def snapshot(store_dir: Path) -> dict[str, str]:
    """chunk id -> text of the store (opened afresh)."""
    from chromadb.api.shared_system_client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
    return {c.chunk_id: c.text for c in Store.open(settings_for(store_dir)).iter_chunks()}


@pytest.fixture
def small_store(tmp_path):
    store_dir = tmp_path / "store"
    corpus = write_corpus(tmp_path / "p.jsonl", 12)
    ingest(settings_for(store_dir), [corpus], embed=cheap_embed)
    return store_dir, corpus


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here ({done.stderr.strip()})")


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


# --------------------------------------------------------------------------- user_message


@pytest.mark.parametrize("exc, needle", [
    (PermissionError(errno.EACCES, "Permission denied", "/srv/store"), "cannot write to /srv/store"),
    (OSError(errno.EROFS, "Read-only file system", "/srv/store"), "check its permissions"),
    (OSError(errno.ENOSPC, "No space left on device", "/srv/store/x"), "is full: free some space"),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "/nope"), "/nope: no such file"),
    (sqlite3.OperationalError("database is locked"), "locked by another process"),
    (sqlite3.DatabaseError("file is not a database"), "papers ingest --rebuild"),
    (sqlite3.DatabaseError("database disk image is malformed"), "is damaged"),
    (sqlite3.OperationalError("database or disk is full"), "is full"),
])
def test_user_message_is_one_line_saying_what_to_do(exc, needle):
    message = user_message(exc)
    assert message is not None and "\n" not in message and needle in message


def test_user_message_leaves_bugs_alone():
    assert user_message(ValueError("database is locked")) is None  # not from SQLite
    assert user_message(KeyError("x")) is None
    assert user_message(OSError("no errno, no file")) is None
    assert user_message(AssetError("fetch it")) == "fetch it"


# --------------------------------------------------------------------------- read-only store


def test_read_only_store_mount(tmp_path, capsys, monkeypatch, small_store):
    store_dir, corpus = small_store
    before = snapshot(store_dir)
    _mount("--bind", str(store_dir), str(store_dir))
    try:
        _mount("-o", "remount,bind,ro", str(store_dir))
        more = write_corpus(tmp_path / "more.jsonl", 3, prefix="Narwhal study")
        code, _, err = run(capsys, monkeypatch, store_dir, "ingest", str(more))
        one_line_error(code, err, f"cannot write to {store_dir}", "PAPERS_STORE_DIR")
        code, out, err = run(capsys, monkeypatch, store_dir, "search", "walrus", "--json")
        if code == 0:  # reading a read-only store works ...
            assert json.loads(out)["results"]
        else:  # ... or says in one line why not
            one_line_error(code, err, "PAPERS_STORE_DIR")
    finally:
        _umount(store_dir)
    assert snapshot(store_dir) == before  # nothing lost


def _ingest_with_failing_upsert(tmp_path, capsys, monkeypatch, store_dir, sqlite_error: str):
    """Ingest 3 new papers while Chroma's upsert raises `sqlite_error`; (code, stderr)."""
    from chromadb.api.models.Collection import Collection
    from chromadb.errors import InternalError

    def fail(self, **kw):
        raise InternalError(f"error returned from database: {sqlite_error}")

    real_upsert = Collection.upsert
    monkeypatch.setattr(Collection, "upsert", fail)
    more = write_corpus(tmp_path / "more.jsonl", 3, prefix="Narwhal study")
    code, _, err = run(capsys, monkeypatch, store_dir, "ingest", str(more))
    monkeypatch.setattr(Collection, "upsert", real_upsert)
    return code, err


def test_read_only_store_injected(tmp_path, capsys, monkeypatch, small_store):
    store_dir, corpus = small_store
    before = snapshot(store_dir)
    code, err = _ingest_with_failing_upsert(tmp_path, capsys, monkeypatch, store_dir,
                                            "(code: 8) attempt to write a readonly database")
    one_line_error(code, err, f"cannot write to {store_dir}")
    assert snapshot(store_dir) == before

    def denied(self, *args, **kw):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", denied)
    more = tmp_path / "more.jsonl"  # written by _ingest_with_failing_upsert
    code, _, err = run(capsys, monkeypatch, tmp_path / "new-store", "ingest", str(more))
    one_line_error(code, err, "cannot write to", "check its permissions or set PAPERS_STORE_DIR")


# --------------------------------------------------------------------------- locked database


def test_second_writer_holding_the_database(capsys, monkeypatch, small_store):
    store_dir, corpus = small_store
    before = snapshot(store_dir)
    holder = sqlite3.connect(store_dir / "chroma.sqlite3", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # what a writer in another process holds mid-transaction
    try:
        for args in (["search", "walrus"], ["stats"], ["ingest", str(corpus)]):
            code, _, err = run(capsys, monkeypatch, store_dir, *args)
            one_line_error(code, err, f"the store at {store_dir} is locked by another process",
                           "wait for it to finish")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert snapshot(store_dir) == before
    code, out, _ = run(capsys, monkeypatch, store_dir, "search", "walrus", "--json")
    assert code in (0, None) and json.loads(out)["results"]


# --------------------------------------------------------------------------- damaged files


def test_truncated_chroma_sqlite(tmp_path, capsys, monkeypatch, small_store):
    store_dir, corpus = small_store
    before = snapshot(store_dir)
    db = store_dir / "chroma.sqlite3"
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 3])  # a copy cut short
    for args in (["search", "walrus"], ["stats"], ["ingest", str(corpus)]):
        code, _, err = run(capsys, monkeypatch, store_dir, *args)
        one_line_error(code, err, f"the store at {store_dir} is damaged",
                       "rebuild it with `papers ingest --rebuild`")

    # The advice works: the damaged folder is set aside (not deleted) and the store rebuilt.
    code, out, err = run(capsys, monkeypatch, store_dir, "ingest", "--rebuild", str(corpus))
    assert code in (0, None), err
    assert snapshot(store_dir) == before
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("store.damaged-")]
    assert len(aside) == 1 and (aside[0] / "chroma.sqlite3").stat().st_size == len(data) // 3


@pytest.mark.parametrize("damage", ["deleted", "truncated-line", "truncated-mid-line", "no-meta"])
def test_deleted_or_truncated_bm25_is_rebuilt(capsys, monkeypatch, small_store, damage):
    store_dir, corpus = small_store
    folder = store_dir / "bm25"
    lines = (folder / "chunks.jsonl").read_text().splitlines(keepends=True)
    if damage == "deleted":
        shutil.rmtree(folder)
    elif damage == "truncated-line":
        (folder / "chunks.jsonl").write_text("".join(lines[: len(lines) // 2]))
    elif damage == "truncated-mid-line":
        text = "".join(lines)
        (folder / "chunks.jsonl").write_text(text[: len(text) // 2])
    else:
        (folder / "meta.json").unlink()
    code, out, err = run(capsys, monkeypatch, store_dir, "search", "walrus acoustics", "--json", "-k", "12")
    assert code in (0, None), err
    assert "Traceback" not in err
    results = json.loads(out)["results"]
    assert len(results) == 12  # every paper is found again: BM25 was rebuilt from the store
    store = Store.open(settings_for(store_dir))
    index = BM25Index.load(folder, store.generation)
    assert index is not None and len(index.chunks) == 12  # and saved whole for the next search


# --------------------------------------------------------------------------- full disk


def test_full_disk_tmpfs(tmp_path, capsys, monkeypatch):
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    _mount("-t", "tmpfs", "-o", "size=64m", "tmpfs", str(store_dir))
    try:
        ingest(settings_for(store_dir), [write_corpus(tmp_path / "p.jsonl", 12)], embed=cheap_embed)
        before = snapshot(store_dir)
        # The 12 papers use ~0.5 MB: a 1 MB disk fills during the next ingest.
        _mount("-o", "remount,size=1m", str(store_dir))
        corpus = write_corpus(tmp_path / "big.jsonl", 1500, prefix="Narwhal study")  # ~3 MB
        code, _, err = run(capsys, monkeypatch, store_dir, "ingest", str(corpus))
        one_line_error(code, err, "is full: free some space or set PAPERS_STORE_DIR")
        _mount("-o", "remount,size=64m", str(store_dir))  # the advice: free some space
        assert before.items() <= snapshot(store_dir).items()  # nothing lost
        assert all(s.complete for s in Store.open(settings_for(store_dir)).paper_states().values())
    finally:
        from chromadb.api.shared_system_client import SharedSystemClient

        SharedSystemClient.clear_system_cache()
        _umount(store_dir)


def test_full_disk_injected_at_the_bm25_write(tmp_path, capsys, monkeypatch, small_store):
    import builtins

    store_dir, corpus = small_store
    before = snapshot(store_dir)
    real_open = builtins.open

    def full(file, mode="r", *args, **kw):
        if "w" in mode and ".bm25.tmp-" in str(file):
            raise OSError(errno.ENOSPC, "No space left on device", str(file))
        return real_open(file, mode, *args, **kw)

    monkeypatch.setattr(builtins, "open", full)
    more = write_corpus(tmp_path / "more.jsonl", 3, prefix="Narwhal study")
    code, _, err = run(capsys, monkeypatch, store_dir, "ingest", str(more))
    one_line_error(code, err, f"the disk holding {store_dir} is full")
    monkeypatch.setattr(builtins, "open", real_open)
    assert before.items() <= snapshot(store_dir).items()  # nothing lost
    assert not [p for p in store_dir.iterdir() if p.name.startswith(".bm25.")]  # no temp left
    # The old index is still whole; a search now rebuilds it for the new generation.
    code, out, err = run(capsys, monkeypatch, store_dir, "search", "narwhal", "--json")
    assert code in (0, None), err
    assert any("Narwhal" in r["title"] for r in json.loads(out)["results"])


def test_full_disk_injected_at_the_chroma_write(tmp_path, capsys, monkeypatch, small_store):
    store_dir, corpus = small_store
    before = snapshot(store_dir)
    code, err = _ingest_with_failing_upsert(tmp_path, capsys, monkeypatch, store_dir,
                                            "(code: 13) database or disk is full")
    one_line_error(code, err, f"the disk holding {store_dir} is full")
    assert snapshot(store_dir) == before


# --------------------------------------------------------------------------- --rebuild swaps


def test_rebuild_asset_error_leaves_the_old_store(tmp_path, capsys, monkeypatch, small_store):
    import assistant.embeddings as embeddings

    store_dir, corpus = small_store
    before = snapshot(store_dir)

    def missing(settings, **options):
        raise AssetError("the embedding model is missing: run `papers ingest` online once")

    monkeypatch.setattr(embeddings, "make_embedding_function", missing)
    code, _, err = run(capsys, monkeypatch, store_dir, "ingest", "--rebuild", str(corpus))
    one_line_error(code, err, "embedding model is missing")
    assert snapshot(store_dir) == before
    monkeypatch.setattr(embeddings, "make_embedding_function", lambda settings, **options: cheap_embed)
    code, out, err = run(capsys, monkeypatch, store_dir, "search", "walrus", "--json")
    assert code in (0, None), err
    assert json.loads(out)["results"]


def test_rebuild_stopped_midway_leaves_the_old_store_then_resumes(tmp_path):
    store_dir = tmp_path / "store"
    settings = settings_for(store_dir)
    old = write_corpus(tmp_path / "old.jsonl", 12)
    ingest(settings, [old], embed=cheap_embed)
    before = snapshot(store_dir)
    new = write_corpus(tmp_path / "new.jsonl", 150, prefix="Narwhal study")  # three groups

    def stop(done: int, total: int) -> None:
        if done > 0:
            raise KeyboardInterrupt  # Ctrl-C between two groups

    with pytest.raises(KeyboardInterrupt):
        ingest(settings, [new], rebuild=True, progress=stop, embed=cheap_embed)
    assert snapshot(store_dir) == before  # the live store is untouched ...
    from assistant.answer import Assistant

    hits = Assistant(settings).search("walrus acoustics", k=3)
    assert hits and hits[0].title.startswith("Walrus study")  # ... and usable

    written = []

    def counting(texts):
        written.extend(texts)
        return cheap_embed(texts)

    report = ingest(settings, [new], rebuild=True, embed=counting)
    assert report.unchanged > 0 and len(written) < 150  # the staging build resumed
    after = snapshot(store_dir)
    assert len(after) == 150 and all(cid.startswith("t:") for cid in after)
    assert not set(after) & set(before)  # the old papers are gone: it was a rebuild
    names = {c.name for c in store_mod._client(settings).list_collections()}
    assert names == {"papers"}  # the staging collection was swapped in, not left behind


# --------------------------------------------------------------------------- BM25 atomic save


def test_bm25_reader_never_sees_a_half_written_index(tmp_path):
    from assistant.types import Chunk

    def index(n: int, generation: str) -> BM25Index:
        chunks = [Chunk(f"t:{generation}{i}#0", f"t:{generation}{i}", f"Title {i}",
                        f"walrus text number {i} " * 20, 0, 1) for i in range(n)]
        return BM25Index.build(chunks, generation)

    small, large = index(5, "a"), index(400, "b")
    folder = tmp_path / "bm25"
    small.save(folder)
    stop = threading.Event()
    seen: list[tuple[str, int]] = []

    def reader() -> None:
        while not stop.is_set():
            for generation in ("a", "b"):
                got = BM25Index.load(folder, generation)
                if got is not None:
                    seen.append((generation, len(got.chunks)))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(30):
            (large if i % 2 == 0 else small).save(folder)
    finally:
        stop.set()
        thread.join()
    assert seen  # the reader did read while saves happened
    assert set(seen) <= {("a", 5), ("b", 400)}  # whole indexes only, never a truncated one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bm25"]  # no temp folders left
