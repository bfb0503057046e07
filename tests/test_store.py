"""ingest + store: exact counts, idempotence, updates, pruning, bad input, mismatches, resuming.

The bundled collection is ingested once per session (`bundled_store`); tests that change a store
copy it or build a small synthetic corpus in tmp_path. The CLI runs as a real subprocess with the
network blocked inside it too (see `papers`).
"""

from __future__ import annotations

import json
import os
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from netguard import GUARDED_CLI as _GUARDED_CLI  # `papers` behind the loopback-only guard

from assistant.assets import ensure_tiktoken
from assistant.chunking import chunk_paper, paper_fingerprint
from assistant.config import Settings
from assistant.corpus import bundled_paths, read_papers
from assistant.errors import CorpusError, StoreMismatchError, StoreMissingError
from assistant.ingest import GROUP_CHUNKS, ingest
from assistant.retrieval import BM25Index
from assistant.store import Store, chunk_metadata
from assistant.store_records import matches
from assistant.types import Chunk, Paper

BUNDLED_PAPERS = 399
BUNDLED_CHUNKS = 704  # 220/40-token chunks of the bundled abstracts (pinned splitter versions)

# --------------------------------------------------------------------------- helpers



def cli_env(store_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERS_")}
    env["PAPERS_STORE_DIR"] = str(store_dir)
    env["PAPERS_CACHE_DIR"] = os.environ["PAPERS_CACHE_DIR"]  # the session's staged assets
    env.update(extra)
    return env


def papers(*args: str, store_dir: Path, cwd: Path | None = None, timeout: float = 300,
           **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _GUARDED_CLI, *args], capture_output=True,
                          text=True, env=cli_env(store_dir, **extra), cwd=cwd, timeout=timeout)


def start_papers(*args: str, store_dir: Path, **extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _GUARDED_CLI, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=cli_env(store_dir, **extra))


def summary(stdout: str) -> dict[str, int]:
    """The numbers of `papers ingest`'s summary (stdout may wrap at 80 columns)."""
    text = " ".join(stdout.split())
    found = {m.group(2): int(m.group(1)) for m in re.finditer(
        r"(\d+) (added|updated|unchanged|skipped|pruned)", text)}
    found["written"] = int(re.search(r"chunks written: (\d+)", text).group(1))
    m = re.search(r"store: (\d+) papers, (\d+) chunks", text)
    found["papers"], found["chunks"] = int(m.group(1)), int(m.group(2))
    return found


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def assert_one_line_error(done: subprocess.CompletedProcess, *needles: str) -> str:
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = error_lines(done.stderr)
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: ") and "Traceback" not in done.stderr
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


def settings_for(store_dir: Path, **kw) -> Settings:
    return Settings(store_dir=store_dir, cache_dir=Path(os.environ["PAPERS_CACHE_DIR"]), **kw)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


_WORDS = (
    "graph kernel sparse latent token robust causal convex policy reward signal spectral "
    "manifold protein molecule speech audio image video lidar radar satellite tabular market "
    "weather climate traffic legal medical clinical genome circuit compiler theorem proof "
    "dialogue translation summary retrieval ranking caching pruning quantized federated private "
    "adversarial contrastive diffusion recurrent attention memory planning navigation grasping"
).split()


def synthetic_rows(n: int, seed: int = 0, prefix: str = "Synthetic study") -> list[dict]:
    """n distinct papers, each a one-chunk abstract of ~110 cl100k tokens."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b, c, d, e, f = rng.sample(_WORDS, 6)
        abstract = (
            f"We study {a} {b} methods for {c} data in paper {i}. Our approach combines {d} "
            f"modelling with {e} objectives and improves {f} accuracy on several benchmarks. "
            f"Experiments on {a} and {c} tasks show gains over strong baselines, and an analysis "
            f"explains when {b} helps and when {d} {e} hurts. We release code and data for "
            f"the {f} {a} setting so that others can reproduce the results of study {i}."
        )
        rows.append({"title": f"{prefix} {i}: {a} {b} for {c}", "abstract": abstract})
    return rows


def long_abstract(topic: str, sentences: int = 30) -> str:
    return " ".join(f"Sentence {i} explains how {topic} behaves in setting number {i}, with care."
                    for i in range(sentences))


# --------------------------------------------------------------------------- bundled corpus


def test_bundled_store_counts(bundled_store):
    ensure_tiktoken(bundled_store.cache_dir)
    store = Store.open(bundled_store)
    papers = read_papers(bundled_paths()).papers
    states = store.paper_states()
    assert len(papers) == len(states) == BUNDLED_PAPERS
    assert set(states) == {p.paper_id for p in papers}
    expected_chunks = sum(len(chunk_paper(p, 220, 40)) for p in papers)
    assert store.count() == expected_chunks == BUNDLED_CHUNKS
    for paper in papers:
        state = states[paper.paper_id]
        assert state.complete, paper.title
        assert state.fingerprint == paper_fingerprint(paper, 220, 40)
    stored = store.paper(papers[0].paper_id)
    assert (stored.title, stored.abstract, stored.sources) == (
        papers[0].title, papers[0].abstract, papers[0].sources)


def test_bundled_store_has_a_current_bm25_index(bundled_store):
    store = Store.open(bundled_store)
    index = BM25Index.load(bundled_store.store_dir / "bm25", store.generation)
    assert index is not None and len(index.chunks) == BUNDLED_CHUNKS


def test_reingest_is_idempotent(bundled_store, tmp_path):
    store_dir = tmp_path / "store"
    shutil.copytree(bundled_store.store_dir, store_dir)
    meta = (store_dir / "bm25" / "meta.json").read_text()

    done = papers("ingest", store_dir=store_dir)
    assert done.returncode == 0, done.stderr
    assert summary(done.stdout) == {"added": 0, "updated": 0, "unchanged": BUNDLED_PAPERS,
                                    "skipped": 0, "written": 0, "papers": BUNDLED_PAPERS,
                                    "chunks": BUNDLED_CHUNKS}
    assert "stored" not in done.stderr  # nothing was embedded
    # Nothing changed, so the generation (and the BM25 index keyed by it) stays.
    assert (store_dir / "bm25" / "meta.json").read_text() == meta


# --------------------------------------------------------------------------- updates and pruning


def test_changed_paper_replaces_its_old_chunks(tmp_path):
    settings = settings_for(tmp_path / "store")
    rows = [
        {"title": "Long Study of Walrus Acoustics", "abstract": long_abstract("walrus acoustics")},
        *synthetic_rows(2, seed=3),
    ]
    corpus = write_jsonl(tmp_path / "papers.jsonl", rows)
    first = ingest(settings, [corpus])
    assert (first.added, first.updated, first.unchanged) == (3, 0, 0)
    store = Store.open(settings)
    pid = read_papers([corpus]).papers[0].paper_id
    old_ids = sorted(store.chunk_ids_of([pid]))
    assert len(old_ids) >= 3  # a long abstract: several chunks

    rows[0]["abstract"] = ("A much shorter abstract: narwhal tusks sense water salinity, which "
                           "we show with a small field study.")
    write_jsonl(corpus, rows)
    second = ingest(settings, [corpus])
    assert (second.added, second.updated, second.unchanged) == (0, 1, 2)
    assert second.chunks_written == 1
    assert second.chunks == first.chunks - len(old_ids) + 1

    store = Store.open(settings)
    assert store.chunk_ids_of([pid]) == [f"{pid}#0"]
    assert store.paper_states()[pid].complete
    assert store.paper(pid).abstract.startswith("A much shorter abstract")
    bm25 = BM25Index.for_store(store)
    assert bm25.search("behaves with care", 10) == []  # words of the old abstract only
    assert [c.paper_id for c, _ in bm25.search("narwhal tusks salinity", 10)] == [pid]

    third = ingest(settings, [corpus])
    assert (third.updated, third.unchanged, third.chunks_written) == (0, 3, 0)


def test_prune_removes_papers_no_longer_in_the_sources(tmp_path):
    store_dir = tmp_path / "store"
    a = write_jsonl(tmp_path / "a.jsonl", synthetic_rows(3, seed=1, prefix="Kept"))
    b = write_jsonl(tmp_path / "b.jsonl", synthetic_rows(2, seed=2, prefix="Dropped"))
    settings = settings_for(store_dir)
    ingest(settings, [a, b])

    done = papers("ingest", str(a), store_dir=store_dir)  # without --prune: b's papers stay
    assert done.returncode == 0, done.stderr
    got = summary(done.stdout)
    assert (got["unchanged"], got["papers"], got["chunks"]) == (3, 5, 5)
    assert "pruned" not in done.stdout

    done = papers("ingest", str(a), "--prune", store_dir=store_dir)
    assert done.returncode == 0, done.stderr
    got = summary(done.stdout)
    assert (got["unchanged"], got["pruned"], got["papers"], got["chunks"]) == (3, 2, 3, 3)

    store = Store.open(settings)
    titles = {c.title for c in store.iter_chunks()}
    assert titles == {r["title"] for r in synthetic_rows(3, seed=1, prefix="Kept")}
    bm25 = BM25Index.for_store(store)
    assert len(bm25.chunks) == 3 and not any(c.title.startswith("Dropped") for c in bm25.chunks)


# --------------------------------------------------------------------------- bad input


BAD_LINES = [
    json.dumps({"title": "Good Paper One", "abstract": "An abstract about penguin migration."}),
    '{"title": "Broken", "abstract": ',
    json.dumps({"title": "Good Paper Two", "abstract": "An abstract about glacier melt rates."}),
    json.dumps({"title": "No Abstract Here"}),
    "[1, 2, 3]",
]


def test_malformed_records_are_skipped_and_reported(tmp_path):
    (tmp_path / "bad.jsonl").write_text("\n".join(BAD_LINES) + "\n")
    store_dir = tmp_path / "store"
    done = papers("ingest", "bad.jsonl", store_dir=store_dir, cwd=tmp_path)
    skipped = [line for line in done.stderr.splitlines() if line.startswith("skipped ")]
    assert [line.split(": ")[0] for line in skipped] == [
        "skipped bad.jsonl:2", "skipped bad.jsonl:4", "skipped bad.jsonl:5"]
    assert skipped[0].startswith("skipped bad.jsonl:2: bad JSON (")
    assert skipped[1] == "skipped bad.jsonl:4: missing abstract"
    assert skipped[2] == "skipped bad.jsonl:5: not a JSON object (a list)"
    got = summary(done.stdout)
    assert (got["added"], got["skipped"], got["papers"], got["chunks"]) == (2, 3, 2, 2)
    assert "Traceback" not in done.stderr


def test_ingest_with_skipped_records_exits_3(tmp_path):
    (tmp_path / "bad.jsonl").write_text("\n".join(BAD_LINES) + "\n")
    done = papers("ingest", "bad.jsonl", store_dir=tmp_path / "store", cwd=tmp_path)
    assert "skipped bad.jsonl:2: bad JSON" in done.stderr
    assert done.returncode == 3


def test_problems_are_printed_verbatim(tmp_path):
    abstract = "An abstract long enough to count as one in a page dump. " * 5
    (tmp_path / "p.txt").write_text(f"Closing [/] and [bold] in a title\nA Real Title\n{abstract}\n")
    done = papers("ingest", "p.txt", store_dir=tmp_path / "store", cwd=tmp_path)
    assert "Traceback" not in done.stderr
    assert 'skipped p.txt:1: title "Closing [/] and [bold] in a title" has no abstract' in (
        done.stderr)
    assert summary(done.stdout)["papers"] == 1  # the good record after it is stored


def test_strict_aborts_before_writing_anything(tmp_path):
    (tmp_path / "bad.jsonl").write_text("\n".join(BAD_LINES) + "\n")
    store_dir = tmp_path / "store"
    done = papers("ingest", "--strict", "bad.jsonl", store_dir=store_dir, cwd=tmp_path)
    assert_one_line_error(done, "3 malformed records", "bad.jsonl:2", "--strict")
    assert not store_dir.exists()

    # An existing store is left exactly as it was.
    good = write_jsonl(tmp_path / "good.jsonl", synthetic_rows(2, seed=5))
    settings = settings_for(store_dir)
    ingest(settings, [good])
    before = Store.open(settings)
    generation, states = before.generation, before.paper_states()
    with pytest.raises(CorpusError):
        ingest(settings, [good, tmp_path / "bad.jsonl"], strict=True, prune=True)
    done = papers("ingest", "--strict", "--prune", "bad.jsonl", store_dir=store_dir, cwd=tmp_path)
    assert_one_line_error(done, "malformed")
    after = Store.open(settings)
    assert (after.generation, after.paper_states(), after.count()) == (generation, states, 2)


# --------------------------------------------------------------------------- store errors


def test_chunking_mismatch_asks_to_reingest(tmp_path):
    store_dir = tmp_path / "store"
    corpus = write_jsonl(tmp_path / "p.jsonl", [
        {"title": "Long Study of Walrus Acoustics", "abstract": long_abstract("walrus acoustics")}])
    small = ingest(settings_for(store_dir, chunk_size=100), [corpus])

    with pytest.raises(StoreMismatchError) as info:
        Store.open(settings_for(store_dir))
    message = str(info.value)
    assert "\n" not in message
    assert "chunk_size=100 (now 220)" in message and "papers ingest --rebuild" in message
    assert Store.open(settings_for(store_dir, chunk_size=100)).count() == small.chunks

    assert_one_line_error(papers("search", "walrus", store_dir=store_dir), "re-ingest",
                          "chunk_size=100 (now 220)")
    assert_one_line_error(papers("stats", store_dir=store_dir), "re-ingest")
    assert_one_line_error(papers("ingest", str(corpus), store_dir=store_dir), "--rebuild")

    done = papers("ingest", "--rebuild", str(corpus), store_dir=store_dir)
    assert done.returncode == 0, done.stderr
    rebuilt = summary(done.stdout)
    assert rebuilt["added"] == 1 and rebuilt["chunks"] < small.chunks
    done = papers("search", "walrus acoustics", "--json", store_dir=store_dir)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"][0]["title"] == "Long Study of Walrus Acoustics"


# (Only the default library is built from the bundled collection on first use, by search, ask,
# chat and `Assistant`: tests/test_library.py. A store named by its folder never is.)
@pytest.mark.parametrize("command", [["search", "stability gap"], ["ask", "stability gap?"]])
def test_missing_store_says_to_run_ingest(tmp_path, command):
    store_dir = tmp_path / "nothing-here"
    done = papers(*command, store_dir=store_dir)
    assert_one_line_error(done, "no paper store", "`papers ingest`")
    assert not store_dir.exists()  # looking did not create it

    store_dir.mkdir()  # an empty folder is no store either
    assert_one_line_error(papers(*command, store_dir=store_dir), "`papers ingest`")


def test_stats_without_a_store_says_how_to_build_one(tmp_path):
    store_dir = tmp_path / "nothing-here"
    done = papers("stats", store_dir=store_dir)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert " ".join(done.stdout.split()) == (
        f"No library at {store_dir} yet: build it with `papers ingest` (the bundled collection) "
        "or `papers ingest FILE...` (.bib, .ris, .jsonl, .csv).")
    done = papers("stats", "--json", store_dir=store_dir)
    assert json.loads(done.stdout) == {
        "library": None, "store": str(store_dir), "origin": "explicit", "exists": False,
        "papers": 0, "chunks": 0,
        "build": "`papers ingest` (the bundled collection) or `papers ingest FILE...` "
                 "(.bib, .ris, .jsonl, .csv)"}
    assert not store_dir.exists()  # looking did not create it


def test_missing_store_in_python(tmp_path):
    with pytest.raises(StoreMissingError) as info:
        Store.open(settings_for(tmp_path / "store"))
    assert "`papers ingest`" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "store").exists()


# --------------------------------------------------------------------------- batching


class _Recording:
    """Passes calls to a real Chroma collection, remembering the size of each write."""

    def __init__(self, collection) -> None:
        self._collection = collection
        self.upserts: list[int] = []
        self.deletes: list[int] = []

    def upsert(self, *, ids, **kw):
        self.upserts.append(len(ids))
        return self._collection.upsert(ids=ids, **kw)

    def delete(self, *, ids):
        self.deletes.append(len(ids))
        return self._collection.delete(ids=ids)

    def __getattr__(self, name):
        return getattr(self._collection, name)


class SmallBatchStore(Store):
    @property
    def max_batch(self) -> int:
        return 3


def test_upsert_and_delete_respect_the_max_batch_size(tmp_path):
    from assistant.types import Paper

    settings = settings_for(tmp_path / "store")
    real = Store.open(settings, create=True)
    assert real.max_batch >= GROUP_CHUNKS  # Chroma reports its limit (thousands)
    recording = _Recording(real._collection)
    store = SmallBatchStore(settings, recording, real._client)

    papers_ = [Paper(f"t:p{i}", f"Paper {i}", f"Abstract {i}.") for i in range(4)]
    chunks, metas = [], []
    for paper in papers_:
        n = 2 if paper.paper_id != "t:p3" else 4
        for pos in range(n):
            chunk = Chunk(f"{paper.paper_id}#{pos}", paper.paper_id, paper.title,
                          f"text {pos} of {paper.title}", pos, n)
            chunks.append(chunk)
            metas.append(chunk_metadata(chunk, paper, "fp"))
    vectors = np.random.default_rng(0).normal(size=(len(chunks), 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)

    store.upsert(chunks, vectors, metas)
    assert recording.upserts == [3, 3, 3, 1]
    assert real.count() == 10
    assert {c.chunk_id: c.text for c in real.iter_chunks()} == {c.chunk_id: c.text for c in chunks}
    assert all(s.complete for s in real.paper_states().values())
    nearest, score = real.query(vectors[7], 1)[0]
    assert nearest.chunk_id == chunks[7].chunk_id and score == pytest.approx(1.0, abs=1e-3)

    store.delete_chunks(store.chunk_ids_of(["t:p0", "t:p1", "t:p3"]))
    assert recording.deletes == [3, 3, 2]
    assert sorted(c.chunk_id for c in real.iter_chunks()) == ["t:p2#0", "t:p2#1"]


# --------------------------------------------------------------------------- interrupted ingest

RESUME_PAPERS = 150


@pytest.fixture(scope="module")
def resume_corpus(tmp_path_factory):
    """A 150-paper corpus and the chunks a clean, uninterrupted ingest stores for it."""
    root = tmp_path_factory.mktemp("resume")
    corpus = write_jsonl(root / "many.jsonl", synthetic_rows(RESUME_PAPERS, seed=7))
    settings = Settings(store_dir=root / "clean-store",
                        cache_dir=tmp_path_factory.getbasetemp() / "papers-cache")
    report = ingest(settings, [corpus])
    assert report.added == RESUME_PAPERS and report.chunks > GROUP_CHUNKS * 2
    store = Store.open(settings)
    return corpus, {c.chunk_id: c.text for c in store.iter_chunks()}


def _stop_after_first_group(proc: subprocess.Popen, sig: int) -> tuple[int, list[str]]:
    """Wait for a 'stored N/M papers' line with N > 0, send `sig`; return (N, stderr lines)."""
    lines: queue.Queue = queue.Queue()
    seen: list[str] = []

    def pump() -> None:
        for line in proc.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        m = re.search(r"stored (\d+)/(\d+) papers", line)
        if m and int(m.group(1)) > 0:
            proc.send_signal(sig)
            proc.wait(timeout=60)
            while (rest := lines.get(timeout=10)) is not None:
                seen.append(rest)
            return int(m.group(1)), seen
    proc.kill()
    pytest.fail("ingest never reported a stored group:\n" + "".join(seen))


def _check_resumed(store_dir: Path, stored_first: int, clean: dict[str, str]) -> None:
    done = papers("ingest", str(store_dir.parent / "many.jsonl"), store_dir=store_dir)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    got = summary(done.stdout)
    assert got["unchanged"] >= stored_first > 0  # the first run's groups are kept ...
    assert got["unchanged"] < RESUME_PAPERS  # ... and the rest is done now
    assert got["added"] + got["updated"] + got["unchanged"] == RESUME_PAPERS
    assert got["written"] < len(clean)
    assert (got["papers"], got["chunks"]) == (RESUME_PAPERS, len(clean))

    store = Store.open(settings_for(store_dir))
    assert {c.chunk_id: c.text for c in store.iter_chunks()} == clean  # no duplicates, no gaps
    assert all(s.complete for s in store.paper_states().values())
    bm25 = BM25Index.for_store(store)
    assert sorted(c.chunk_id for c in bm25.chunks) == sorted(clean)


def test_killed_ingest_resumes(tmp_path, resume_corpus):
    corpus, clean = resume_corpus
    shutil.copy(corpus, tmp_path / "many.jsonl")
    store_dir = tmp_path / "store"
    proc = start_papers("ingest", str(tmp_path / "many.jsonl"), store_dir=store_dir)
    stored, stderr = _stop_after_first_group(proc, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    assert "Traceback" not in "".join(stderr)
    _check_resumed(store_dir, stored, clean)


def test_interrupted_ingest_resumes(tmp_path, resume_corpus):
    corpus, clean = resume_corpus
    shutil.copy(corpus, tmp_path / "many.jsonl")
    store_dir = tmp_path / "store"
    proc = start_papers("ingest", str(tmp_path / "many.jsonl"), store_dir=store_dir)
    stored, stderr = _stop_after_first_group(proc, signal.SIGINT)
    stdout = proc.stdout.read()
    assert "Traceback" not in "".join(stderr)
    assert "chunks written" not in stdout  # it stopped rather than finishing

    done = papers("stats", store_dir=store_dir)  # the partial store is usable
    assert done.returncode == 0, done.stderr
    n = int(re.search(r"papers: (\d+)", done.stdout).group(1))
    assert stored <= n < RESUME_PAPERS
    done = papers("search", "graph kernel", "--json", "-k", "3", store_dir=store_dir)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["results"]) == 3
    _check_resumed(store_dir, stored, clean)


def test_ctrl_c_during_ingest_exits_130(tmp_path):
    corpus = write_jsonl(tmp_path / "p.jsonl", synthetic_rows(100, seed=21))  # two groups
    proc = start_papers("ingest", str(corpus), store_dir=tmp_path / "store")
    _, stderr = _stop_after_first_group(proc, signal.SIGINT)
    assert "Traceback" not in "".join(stderr)
    assert proc.returncode == 130


def test_stopped_ingest_leaves_no_stale_bm25_index(tmp_path):
    """An update stopped after its first group: search must see what the store now holds."""
    settings = settings_for(tmp_path / "store")
    rows = synthetic_rows(5, seed=11)
    corpus = write_jsonl(tmp_path / "p.jsonl", rows)
    ingest(settings, [corpus])  # saves a BM25 index for the store's generation
    pids = [p.paper_id for p in read_papers([corpus]).papers]
    pid = pids[0]
    assert Store.open(settings).paper(pid) is not None

    rows[0]["abstract"] = "Quokka xylophone orchestras tune their instruments by moonlight."
    write_jsonl(corpus, rows + synthetic_rows(70, seed=12, prefix="Extra"))  # two groups

    def stop(done: int, total: int) -> None:
        if done > 0:
            raise KeyboardInterrupt  # what Ctrl-C does between two groups

    with pytest.raises(KeyboardInterrupt):
        ingest(settings, [corpus], progress=stop)

    from assistant.answer import Assistant

    store = Store.open(settings)
    assert all(store.paper(p) is not None for p in pids)  # no paper lost to the stop
    hits = Assistant(settings).search("quokka xylophone orchestras", k=3)
    assert hits[0].paper_id == pid
    assert hits[0].bm25_score is not None  # BM25 indexed the new text, not the stale one
    assert "Quokka" in hits[0].chunks[0].text


def test_ingest_streams_and_reports_progress_from_the_first_group(tmp_path, monkeypatch):
    """The first embedding happens after one group was chunked, not after every paper."""
    import assistant.ingest as ingest_mod

    corpus = write_jsonl(tmp_path / "p.jsonl", synthetic_rows(200, seed=31))  # one chunk each
    chunked: list[str] = []
    real_chunk = ingest_mod.chunk_paper

    def counting_chunk(paper, *args):
        chunked.append(paper.paper_id)
        return real_chunk(paper, *args)

    monkeypatch.setattr(ingest_mod, "chunk_paper", counting_chunk)
    at_first_embed: list[int] = []
    events: list[tuple[int, int]] = []

    def embed(texts):
        at_first_embed.append(len(chunked))
        rng = np.random.default_rng(len(at_first_embed))
        vectors = rng.normal(size=(len(texts), 384)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    report = ingest(settings_for(tmp_path / "store"), [corpus], embed=embed,
                    progress=lambda done, total: events.append((done, total)))
    assert report.added == 200 and report.chunks == 200
    assert at_first_embed[0] == GROUP_CHUNKS  # one group chunked, not 200 papers
    assert events[0] == (0, 200) and events[1] == (GROUP_CHUNKS, 200)
    assert events[-1] == (200, 200) and len(events) == 5  # 0, 64, 128, 192, 200


def test_chromadb_is_first_imported_with_its_override_checks_off(tmp_path):
    """Every way into chromadb goes through chroma_import.prepare() first: a `chromadb.errors`
    import ahead of it once brought back the 0.4-0.7 s of signature checks to every process."""
    code = ("import sys; from pathlib import Path\n"
            "from assistant.config import Settings\nfrom assistant.store import Store\n"
            "try:\n    Store.open(Settings(store_dir=Path(sys.argv[1])))\n"
            "except Exception as e:\n    print(type(e).__name__)\n"
            "import overrides\nprint('chromadb' in sys.modules, overrides.override.__module__)\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "none")],
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["StoreMissingError", "True", "assistant.chroma_import"], out.stderr


def test_filtered_query_on_a_big_store_post_filters_the_nearest(tmp_path, monkeypatch):
    """Above POST_FILTER_MIN chunks a filtered query keeps the first that pass among 8 x n (then
    32 x n) unfiltered nearest (Chroma's `where` before HNSW took 2.9 s at 1M chunks); the result
    is the same chunks as Chroma's own `where`, and a narrower filter still goes to the `where`."""
    import numpy as np

    from assistant import store as store_mod
    from assistant.types import Filters

    settings = Settings(store_dir=tmp_path / "store", cache_dir=tmp_path / "cache")
    store = Store.open(settings, create=True)
    rng = np.random.default_rng(3)
    chunks, metas = [], []
    for i in range(120):
        year = 2015 + i % 10
        cats = ("cs.LG",) if i % 3 else ("cs.CL",)
        paper = Paper(paper_id=f"p{i}", title=f"T{i}", abstract=f"text {i}", year=year,
                      categories=cats, sources=("a.jsonl",) if i < 117 else ("b.jsonl",))
        chunk = Chunk(chunk_id=f"p{i}#0", paper_id=f"p{i}", title=f"T{i}", text=f"text {i}",
                      position=0, n_chunks=1, year=year, categories=cats, sources=paper.sources)
        chunks.append(chunk)
        metas.append(chunk_metadata(chunk, paper, "fp"))
    vectors = rng.standard_normal((120, 384)).astype(np.float32)
    store.upsert(chunks, vectors / np.linalg.norm(vectors, axis=1, keepdims=True), metas)
    q = rng.standard_normal(384).astype(np.float32)
    q /= np.linalg.norm(q)
    cases = [Filters(year_min=2018), Filters(category="cs.LG", year_max=2022),
             Filters(source="b.jsonl")]  # 3 of 120 pass: fewer than n=5 anywhere
    expected = [[c.chunk_id for c, _ in store.query(q, 5, f)] for f in cases]  # 120 < the floor
    monkeypatch.setattr(store_mod, "POST_FILTER_MIN", 100)
    calls = []
    real = store._post_filtered
    monkeypatch.setattr(store, "_post_filtered", lambda *a: calls.append(r := real(*a)) or r)
    got = [[c.chunk_id for c, _ in store.query(q, 5, f)] for f in cases]
    assert got == expected
    assert [r is not None for r in calls] == [True, True, False]
    # Told the share that passes, one query of 1.5 x n / share nearest is enough; a share too
    # small for 32 x n goes straight to the `where`.
    sizes = []
    inner = store._collection._inner  # the Chroma collection behind the error guard
    collection_query = type(inner).query
    monkeypatch.setattr(type(inner), "query",
                        lambda self, *a, **k: sizes.append(k.get("n_results")) or collection_query(self, *a, **k))
    shares = [0.7, 80 / 120, 3 / 120]  # what BM25Index.share says for the three filters
    got = [[c.chunk_id for c, _ in store.query(q, 5, f, share=x)] for f, x in zip(cases, shares)]
    assert got == expected
    assert sizes == [5 * 3, 5 * 3, 5]  # ceil(1.5 / 0.7) = 3; ceil(1.5 / 0.67) = 3; 3/120: `where`
    # Told which ids pass, the nearest are asked as ids only and only the kept are read; a
    # chunk the predicate does not know (None) is checked on its metadata.
    truth = {c.chunk_id: c for c in chunks}
    includes = []
    monkeypatch.setattr(type(inner), "query", lambda self, *a, **k: includes.append(k.get("include"))
                        or collection_query(self, *a, **k))

    def predicate(f):
        return lambda ids: [None if cid == "p7#0" else matches(truth[cid], f) for cid in ids]

    got = [[c.chunk_id for c, _ in store.query(q, 5, f, share=x, passes=predicate(f))]
           for f, x in zip(cases, shares)]
    assert got == expected
    assert includes[:2] == [["distances"], ["distances"]]
    texts = {c.chunk_id: c.text for c, _ in store.query(q, 5, cases[0], share=0.7, passes=predicate(cases[0]))}
    assert texts == {cid: truth[cid].text for cid in expected[0]}
