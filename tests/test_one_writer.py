"""One writer at a time, nothing pruned on a partial read, damage found and repaired (issue 17,
findings 1, 2 and the read-only cache of 6).

Each test failed before: two ingests interleaved (a traceback, or papers without vectors and
every run exiting 0), `--prune` deleted the papers of a file that vanished mid-read and a run
reported "0 skipped" for 150,000 records it never stored, no command found chunks without a
vector and no ingest repaired them, and a read-only cache stopped `stats` and `search`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from test_failures import cheap_embed, one_line_error, run
from test_store import (
    _stop_after_first_group,
    assert_one_line_error,
    papers,
    settings_for,
    start_papers,
    summary,
    synthetic_rows,
    write_jsonl,
)

import assistant.ingest as ingest_mod
from assistant.errors import StoreLockedError
from assistant.ingest import ingest
from assistant.store import Store
from assistant.writer import LOCK_NAME, WriterLock


@pytest.fixture(autouse=True)
def _fresh_chroma():
    from chromadb.api.shared_system_client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
    yield
    SharedSystemClient.clear_system_cache()


# --------------------------------------------------------------------------- one writer


def test_second_ingest_waits_for_the_first_and_nothing_interleaves(tmp_path):
    """Two `papers ingest` of different files into one store, started together."""
    a = write_jsonl(tmp_path / "a.jsonl", synthetic_rows(150, seed=41, prefix="Alpha"))
    b = write_jsonl(tmp_path / "b.jsonl", synthetic_rows(150, seed=42, prefix="Beta"))
    store_dir = tmp_path / "store"
    first = start_papers("ingest", str(a), store_dir=store_dir)
    _wait_for_line(first, "stored ")  # the first holds the lock and is writing
    second = papers("ingest", str(b), store_dir=store_dir, timeout=600)
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0 and second.returncode == 0, (err, second.stderr)
    assert "Traceback" not in err + second.stderr
    waited = [line for line in second.stderr.splitlines() if line.startswith("waiting for ")]
    assert len(waited) == 1, second.stderr
    assert re.fullmatch(rf"waiting for papers ingest \(pid {first.pid} on .+, since .+\) to finish "
                        rf"writing to {re.escape(str(store_dir))} \(at most 600 s: PAPERS_WRITER_WAIT\)\.\.\.",
                        waited[0]), waited[0]
    assert (summary(out)["added"], summary(second.stdout)["added"]) == (150, 150)
    checked = papers("check", store_dir=store_dir)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.split() == (f"store {store_dir}: 300 papers, 300 chunks; every chunk has "
                                      "its vector; BM25 index current (300 chunks)").split()


def _wait_for_line(proc: subprocess.Popen, prefix: str, limit: float = 300) -> list[str]:
    seen = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith(prefix):
            return seen
    proc.kill()
    pytest.fail("no line starting with %r:\n%s" % (prefix, "".join(seen)))


def test_second_writer_exits_naming_the_holder_while_searches_go_on(tmp_path, bundled_store):
    import shutil

    store_dir = tmp_path / "store"
    shutil.copytree(bundled_store.store_dir, store_dir)
    corpus = write_jsonl(tmp_path / "p.jsonl", synthetic_rows(3, seed=5))
    with WriterLock(settings_for(store_dir)) as held:
        done = papers("ingest", str(corpus), store_dir=store_dir, PAPERS_WRITER_WAIT="0")
        line = assert_one_line_error(done, f"pid {os.getpid()} on ")
        assert re.fullmatch(rf"Error: papers ingest \(pid {os.getpid()} on .+, since .+\) is writing to "
                            rf"{re.escape(str(store_dir))}: wait for it to finish and retry, or let "
                            r"`papers ingest` wait longer \(PAPERS_WRITER_WAIT=0 s\)", line), line
        with pytest.raises(StoreLockedError):
            ingest(settings_for(store_dir, writer_wait=0.2), [corpus], embed=cheap_embed)
        for command in (["search", "stability gap", "--json"], ["stats"], ["check"]):
            reader = papers(*command, store_dir=store_dir)
            assert reader.returncode == 0, reader.stderr  # readers take no lock
        assert held.me["pid"] == os.getpid()
    report = ingest(settings_for(store_dir), [corpus], embed=cheap_embed)  # released: it writes
    assert report.added == 3


def test_a_killed_writers_lock_is_taken_over(tmp_path):
    corpus = write_jsonl(tmp_path / "many.jsonl", synthetic_rows(150, seed=7))
    store_dir = tmp_path / "store"
    proc = start_papers("ingest", str(corpus), store_dir=store_dir)
    _stop_after_first_group(proc, signal.SIGKILL)
    assert json.loads((store_dir / LOCK_NAME).read_text())["pid"] == proc.pid  # left behind
    done = papers("ingest", str(corpus), store_dir=store_dir, PAPERS_WRITER_WAIT="0")
    assert done.returncode == 0, done.stderr
    took = [line for line in done.stderr.splitlines() if line.startswith("took over")]
    assert len(took) == 1 and f"(pid {proc.pid} on " in took[0]
    assert took[0].endswith("did not release it (it is no longer running)")
    assert summary(done.stdout)["papers"] == 150
    assert (store_dir / LOCK_NAME).read_text() == ""  # released cleanly this time


def test_the_lock_moves_with_a_damaged_store_set_aside(tmp_path):
    """`--rebuild` of a damaged store moves the folder aside; the lock it holds must not stay
    behind there, or a second writer would find the new folder unlocked."""
    store_dir = tmp_path / "store"
    corpus = write_jsonl(tmp_path / "p.jsonl", synthetic_rows(5, seed=3))
    ingest(settings_for(store_dir), [corpus], embed=cheap_embed)
    (store_dir / "chroma.sqlite3").write_bytes(b"not a database, not at all" * 100)
    seen = []

    def progress(done: int, total: int) -> None:
        if not seen:
            with pytest.raises(StoreLockedError):
                with WriterLock(settings_for(store_dir, writer_wait=0)):
                    pass
            seen.append(done)

    ingest(settings_for(store_dir), [corpus], rebuild=True, embed=cheap_embed, progress=progress)
    assert seen and len(list(tmp_path.glob("store.damaged-*"))) == 1


# --------------------------------------------------------------------------- partial reads


@pytest.fixture
def forty(tmp_path):
    """A store of 40 papers read from F.jsonl, which then grows to 400 records."""
    store_dir = tmp_path / "store"
    source = write_jsonl(tmp_path / "F.jsonl", synthetic_rows(40, seed=9))
    ingest(settings_for(store_dir), [source], embed=cheap_embed)
    write_jsonl(source, synthetic_rows(400, seed=9))
    return store_dir, source


def _after_first_pass(monkeypatch, act) -> None:
    """Run `act()` once the reader's first pass is done (the file changes between the passes)."""
    real = ingest_mod.PaperStream

    class Stream(real):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            act()

    monkeypatch.setattr(ingest_mod, "PaperStream", Stream)


def test_prune_deletes_nothing_when_a_source_vanished_mid_read(forty, capsys, monkeypatch):
    store_dir, source = forty
    monkeypatch.setattr("assistant.embeddings.make_embedding_function",
                        lambda settings, **options: cheap_embed)
    _after_first_pass(monkeypatch, source.unlink)
    code, out, err = run(capsys, monkeypatch, store_dir, "ingest", "--prune", str(source))
    assert code == 3 and "Traceback" not in err
    assert (f"skipped {source}:1: vanished while it was read: 400 of the 400 records read from it "
            "were not stored; run the ingest again once the file is complete") in err
    assert (f"prune aborted, nothing deleted: {source} vanished while it was read; run `papers ingest "
            "--prune` again once every source is complete") in err
    got = summary(out)
    assert (got["added"], got["skipped"], got["papers"]) == (0, 400, 40)
    assert "prune aborted" in " ".join(out.split())
    assert len(Store.open(settings_for(store_dir)).paper_states()) == 40  # nothing lost


@pytest.mark.parametrize("change", ["shrank", "grew", "replaced"])
def test_a_source_changed_between_the_passes_is_reported_and_not_pruned(forty, tmp_path, monkeypatch, change):
    store_dir, source = forty

    def act() -> None:
        if change == "shrank":
            write_jsonl(source, synthetic_rows(100, seed=9))
        elif change == "grew":
            with source.open("a") as fh:
                fh.write(json.dumps({"title": "Late arrival", "abstract": "Appended meanwhile."}) + "\n")
        else:
            other = write_jsonl(tmp_path / "other.jsonl", synthetic_rows(400, seed=9))
            other.replace(source)  # same bytes, another file

    _after_first_pass(monkeypatch, act)
    report = ingest(settings_for(store_dir), [source], prune=True, embed=cheap_embed)
    why = "was replaced" if change == "replaced" else change
    assert report.pruned == 0 and report.prune_aborted.startswith(f"{source} {why} while it was read")
    assert report.skipped == (300 if change == "shrank" else 0)
    assert report.reported == 1 and report.problems[0].reason.startswith(why)
    assert report.papers >= 100  # the 40 stay, whatever was read is stored


def test_a_source_cut_mid_read_is_not_pruned(tmp_path):
    """A truncated .gz: the papers before the cut are stored, none is pruned."""
    import gzip

    store_dir = tmp_path / "store"
    rows = synthetic_rows(60, seed=4)
    whole = tmp_path / "p.jsonl.gz"
    whole.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    ingest(settings_for(store_dir), [whole], embed=cheap_embed)
    data = whole.read_bytes()
    whole.write_bytes(data[: len(data) // 2])
    report = ingest(settings_for(store_dir), [whole], prune=True, embed=cheap_embed)
    assert report.pruned == 0 and "could not be read to its end" in report.prune_aborted
    assert report.papers == 60


def test_prune_still_prunes_complete_sources(forty):
    store_dir, source = forty
    write_jsonl(source, synthetic_rows(10, seed=9))
    report = ingest(settings_for(store_dir), [source], prune=True, embed=cheap_embed)
    assert (report.pruned, report.prune_aborted, report.papers) == (30, None, 10)


# --------------------------------------------------------------------------- integrity


def lose_vectors(store_dir: Path, keep_first: int) -> int:
    """Damage as two writers left it: chunks in SQLite whose vectors are not in the index.

    Chroma's embedded index is the saved HNSW files plus its log (`embeddings_queue`) replayed
    at load; below its sync threshold (1,000 writes) nothing is saved, so dropping log entries
    drops exactly those vectors and nothing else. Returns how many chunks lost theirs.
    """
    from chromadb.api.shared_system_client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
    con = sqlite3.connect(store_dir / "chroma.sqlite3")
    with con:
        lost = con.execute("DELETE FROM embeddings_queue WHERE seq_id > ?", (keep_first,)).rowcount
    con.close()
    SharedSystemClient.clear_system_cache()
    assert len(Store.open(settings_for(store_dir)).chunks_without_vector()) == lost > 0
    return lost


def test_check_finds_lost_vectors_and_any_ingest_repairs_them(tmp_path, capsys, monkeypatch):
    store_dir = tmp_path / "store"
    corpus = write_jsonl(tmp_path / "p.jsonl", synthetic_rows(30, seed=8))
    ingest(settings_for(store_dir), [corpus], embed=cheap_embed)
    lost = lose_vectors(store_dir, keep_first=20)
    monkeypatch.setattr("assistant.embeddings.make_embedding_function",
                        lambda settings, **options: cheap_embed)

    code, _, err = run(capsys, monkeypatch, store_dir, "check")
    one_line_error(code, err, f"the store at {store_dir} is damaged: {lost} of 30 chunks ({lost} papers) "
                   "have no vector, so dense search cannot find them: repair it with `papers check "
                   "--repair` (or any `papers ingest`)")
    other = write_jsonl(tmp_path / "other.jsonl", synthetic_rows(2, seed=99, prefix="Other"))
    code, out, err = run(capsys, monkeypatch, store_dir, "ingest", str(other))
    assert code in (0, None), err
    assert f"repaired: {lost} chunks had lost their vector and were written again" in err
    code, out, err = run(capsys, monkeypatch, store_dir, "check")
    assert code in (0, None) and "32 papers, 32 chunks; every chunk has its vector" in out
    store = Store.open(settings_for(store_dir))
    stored = {c.chunk_id: c for c in store.iter_chunks()}
    for chunk in stored.values():  # dense search finds every chunk again
        nearest, score = store.query(cheap_embed([chunk.embed_text])[0], 1)[0]
        assert nearest.chunk_id == chunk.chunk_id and score == pytest.approx(1.0, abs=1e-3)


def test_check_repair_and_a_stale_bm25_index(tmp_path, capsys, monkeypatch):
    store_dir = tmp_path / "store"
    ingest(settings_for(store_dir), [write_jsonl(tmp_path / "p.jsonl", synthetic_rows(12, seed=2))],
           embed=cheap_embed)
    lost = lose_vectors(store_dir, keep_first=5)
    lines = (store_dir / "bm25" / "chunks.jsonl").read_text().splitlines(keepends=True)
    (store_dir / "bm25" / "chunks.jsonl").write_text("".join(lines[:6]))
    monkeypatch.setattr("assistant.embeddings.make_embedding_function",
                        lambda settings, **options: cheap_embed)
    code, _, err = run(capsys, monkeypatch, store_dir, "check")
    one_line_error(code, err, f"{lost} of 12 chunks", "the BM25 index is missing, cut short or older")
    code, out, err = run(capsys, monkeypatch, store_dir, "check", "--repair")
    assert code in (0, None), err
    assert out.split() == (f"store {store_dir}: 12 papers, 12 chunks; every chunk has its vector; "
                           "BM25 index current (12 chunks)").split()


def test_an_ingest_stopped_midway_is_reported_by_check(tmp_path, capsys, monkeypatch):
    store_dir = tmp_path / "store"
    corpus = write_jsonl(tmp_path / "p.jsonl", synthetic_rows(100, seed=21))

    def stop(done: int, total: int) -> None:
        if done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ingest(settings_for(store_dir), [corpus], embed=cheap_embed, progress=stop)
    code, _, err = run(capsys, monkeypatch, store_dir, "check")
    one_line_error(code, err, "the BM25 index is missing, cut short or older than the store")


# --------------------------------------------------------------------------- read-only cache


def test_read_only_cache_still_serves_stats_and_search(tmp_path, capsys, monkeypatch, bundled_store):
    """Nothing staged and nothing writable in the cache: stats needs no cache, search stages its
    models in a private temporary folder; only when that fails too does it stop, naming
    PAPERS_CACHE_DIR (it used to advise PAPERS_STORE_DIR)."""
    import errno
    import shutil
    import tempfile

    import assistant.assets as assets

    store_dir = tmp_path / "store"
    shutil.copytree(bundled_store.store_dir, store_dir)
    cache = tmp_path / "ro-cache"
    real_mkdir = Path.mkdir

    def read_only(self, *args, **kw):
        if str(self).startswith(str(cache)):
            raise PermissionError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kw)

    monkeypatch.setattr(Path, "mkdir", read_only)
    monkeypatch.setattr(assets, "_private_cache", None)
    monkeypatch.setenv("PAPERS_CACHE_DIR", str(cache))
    code, out, err = run(capsys, monkeypatch, store_dir, "stats")
    assert code in (0, None) and "papers: 399" in out, err
    code, out, err = run(capsys, monkeypatch, store_dir, "search", "stability gap", "--json", "-k", "2")
    assert code in (0, None), err
    assert len(json.loads(out)["results"]) == 2

    monkeypatch.setattr(assets, "_private_cache", None)
    monkeypatch.setattr(tempfile, "mkdtemp", lambda **kw: (_ for _ in ()).throw(
        PermissionError(errno.EACCES, "Permission denied", "/tmp")))
    monkeypatch.setattr(assets, "is_verified", lambda path, sha: False)  # nothing staged anywhere
    code, _, err = run(capsys, monkeypatch, store_dir, "search", "stability gap")
    one_line_error(code, err, f"cannot write to the cache {cache}", "set PAPERS_CACHE_DIR")
