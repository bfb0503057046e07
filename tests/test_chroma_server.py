"""Server mode: a real `chroma run` on loopback instead of the embedded store (PAPERS_CHROMA_URL)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from netguard import GUARDED_CLI as _GUARDED_CLI  # `papers` behind the loopback-only guard

from assistant.answer import Assistant
from assistant.config import Settings
from assistant.errors import StoreMismatchError, StoreUnavailableError
from assistant.ingest import ingest
from assistant.store import Store

CHROMA = Path(sys.executable).parent / "chroma"
LOOPBACK = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}

PAPERS = [
    ("Penguin Huddles in Antarctic Winter",
     "Emperor penguins huddle to survive the Antarctic winter; we model how penguin huddles "
     "rotate so that every bird gets a turn in the warm centre of the group."),
    ("Segmenting Sea Ice in Satellite Radar",
     "Sea ice is segmented in synthetic aperture radar images with a U-Net, giving daily ice "
     "maps for shipping routes and for habitat studies."),
    ("Sourdough Fermentation Kinetics",
     "We measure how wild yeast and lactic acid bacteria raise sourdough bread, modelling gas "
     "production against temperature and hydration."),
    ("Compiling Tensor Programs for Microcontrollers",
     "A compiler maps neural network tensor programs onto microcontrollers with a few hundred "
     "kilobytes of memory by fusing operators and planning buffers."),
    ("Bird Song Dialects Across Islands",
     "Songbirds on neighbouring islands develop distinct song dialects; recordings from twelve "
     "islands show how isolation shapes learned vocalisations."),
]



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def papers(*args: str, url: str, store_dir: Path, **extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERS_")}
    env.update(LOOPBACK, PAPERS_CHROMA_URL=url, PAPERS_STORE_DIR=str(store_dir),
               PAPERS_CACHE_DIR=os.environ["PAPERS_CACHE_DIR"], **extra)
    return subprocess.run([sys.executable, "-c", _GUARDED_CLI, *args], capture_output=True,
                          text=True, env=env, timeout=300)


def _heartbeat(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url}/api/v2/heartbeat", timeout=2) as resp:
            return resp.status == 200 and "heartbeat" in resp.read().decode()
    except OSError:
        return False


def start_chroma(root: Path, port: int) -> subprocess.Popen:
    """`chroma run` on loopback with its data in `root/data`; returns once it answers."""
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, **LOOPBACK, "ANONYMIZED_TELEMETRY": "False"}
    with open(root / "server.log", "ab") as log:
        proc = subprocess.Popen(
            [str(CHROMA), "run", "--path", str(root / "data"), "--host", "127.0.0.1",
             "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=root,
        )
    deadline = time.monotonic() + 60
    while not _heartbeat(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("chroma run did not answer:\n"
                        + (root / "server.log").read_text(errors="replace")[-3000:])
        time.sleep(0.2)
    return proc


def stop_chroma(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory):
    """A real Chroma server on a free loopback port, stopped after the module's tests."""
    if not CHROMA.exists():
        pytest.skip(f"{CHROMA} is not installed")
    root = tmp_path_factory.mktemp("chroma-server")
    port = free_port()
    proc = start_chroma(root, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_chroma(proc)


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "papers.jsonl"
    path.write_text("".join(json.dumps({"title": t, "abstract": a, "year": 2020 + i}) + "\n"
                            for i, (t, a) in enumerate(PAPERS)))
    return path


def server_settings(url: str, tmp_path: Path, **kw) -> Settings:
    return Settings(chroma_url=url, store_dir=tmp_path / "no-local-store",
                    cache_dir=Path(os.environ["PAPERS_CACHE_DIR"]), **kw)


def test_ingest_search_and_reingest_through_the_server(chroma_url, corpus, tmp_path, monkeypatch):
    for name, value in LOOPBACK.items():
        monkeypatch.setenv(name, value)
    settings = server_settings(chroma_url, tmp_path, collection="inprocess")
    first = ingest(settings, [corpus])
    assert (first.added, first.papers, first.chunks) == (5, 5, 5)

    hits = Assistant(settings).search("how do penguins keep warm in winter", k=3)
    assert hits[0].title == "Penguin Huddles in Antarctic Winter"
    assert hits[0].year == 2020 and hits[0].bm25_score is not None

    again = ingest(settings, [corpus])
    assert (again.added, again.updated, again.unchanged, again.chunks_written) == (0, 0, 5, 0)
    assert again.chunks == 5

    store = Store.open(settings)
    assert store.local_dir().is_relative_to(settings.cache_dir / "servers")
    assert (store.local_dir() / "bm25" / "meta.json").exists()
    assert not settings.store_dir.exists()  # nothing was written locally


def test_the_client_cache_follows_the_collection_not_the_address(chroma_url, corpus, tmp_path, monkeypatch):
    """The same collection reached by another address finds its BM25 index (no rebuild), and a
    cache folder kept under the older key (URL and name) is moved to the collection's."""
    import hashlib

    from assistant.retrieval import BM25Index

    for name, value in LOOPBACK.items():
        monkeypatch.setenv(name, value)
    settings = server_settings(chroma_url, tmp_path, collection="moved")
    ingest(settings, [corpus])
    store = Store.open(settings)
    meta = store.local_dir() / "bm25" / "meta.json"
    built = meta.stat().st_mtime_ns
    other = Store.open(settings.model_copy(update={"chroma_url": chroma_url + "/"}))
    assert other.local_dir() == store.local_dir()
    assert len(BM25Index.for_store(other).chunks) == 5 and meta.stat().st_mtime_ns == built

    older = hashlib.sha1(f"{chroma_url}|moved".encode()).hexdigest()[:12]
    store.local_dir().rename(settings.cache_dir / "servers" / older)  # as older code kept it
    assert store.local_dir().is_dir() and meta.stat().st_mtime_ns == built
    assert not (settings.cache_dir / "servers" / older).exists()


def test_cli_against_the_server(chroma_url, corpus, tmp_path):
    store_dir = tmp_path / "no-local-store"
    done = papers("ingest", str(corpus), url=chroma_url, store_dir=store_dir)
    assert done.returncode == 0, done.stderr
    assert "5 added" in " ".join(done.stdout.split())

    done = papers("search", "sourdough bread yeast", "--json", "-k", "2", url=chroma_url,
                  store_dir=store_dir)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)["results"]
    assert results[0]["title"] == "Sourdough Fermentation Kinetics" and len(results) == 2

    done = papers("search", "island songbirds", "--json", "--year-min", "2024", url=chroma_url,
                  store_dir=store_dir)
    assert [r["title"] for r in json.loads(done.stdout)["results"]] == [
        "Bird Song Dialects Across Islands"]

    done = papers("ingest", str(corpus), url=chroma_url, store_dir=store_dir)
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert "0 added, 0 updated, 5 unchanged" in text and "chunks written: 0" in text

    done = papers("stats", url=chroma_url, store_dir=store_dir)
    assert done.returncode == 0, done.stderr
    assert "papers: 5" in done.stdout and f"store: {chroma_url}" in done.stdout
    assert not store_dir.exists()


def test_mismatch_on_the_server(chroma_url, corpus, tmp_path, monkeypatch):
    for name, value in LOOPBACK.items():
        monkeypatch.setenv(name, value)
    ingest(server_settings(chroma_url, tmp_path, collection="small-chunks", chunk_size=64),
           [corpus])
    with pytest.raises(StoreMismatchError) as info:
        Store.open(server_settings(chroma_url, tmp_path, collection="small-chunks"))
    assert chroma_url in str(info.value) and "--rebuild" in str(info.value)


def test_missing_collection_on_the_server(chroma_url, tmp_path):
    done = papers("search", "penguins", url=chroma_url, store_dir=tmp_path / "x",
                  PAPERS_COLLECTION="never-ingested")
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "`papers ingest`" in lines[0] and chroma_url in lines[0]


@pytest.mark.parametrize("command", [["search", "penguins"], ["stats"], ["ingest"]])
def test_unreachable_server_is_one_line(tmp_path, command):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    done = papers(*command, url=url, store_dir=tmp_path / "store")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: cannot reach the Chroma server at " + url)
    assert "PAPERS_CHROMA_URL" in lines[0]


def test_unreachable_server_in_python(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StoreUnavailableError) as info:
        Store.open(server_settings(url, tmp_path))
    assert "\n" not in str(info.value) and url in str(info.value)


# --------------------------------------------------------------------------- one writer (issue 17)


def test_writer_lease_on_the_server(chroma_url, tmp_path, monkeypatch):
    """Writers on other machines cannot see a flock: the lock is a lease on the server."""
    import socket as socket_mod

    from assistant.errors import StoreLockedError
    from assistant.store import WriterLeases
    from assistant.writer import WriterLock

    for name, value in LOOPBACK.items():
        monkeypatch.setenv(name, value)
    settings = server_settings(chroma_url, tmp_path, collection="leased", writer_wait=0)
    with WriterLock(settings):
        with pytest.raises(StoreLockedError) as info:
            WriterLock(settings).__enter__()
        assert f"(pid {os.getpid()} on " in str(info.value) and "\n" not in str(info.value)
        (tmp_path / "x.jsonl").write_text(json.dumps({"title": "T", "abstract": "A."}) + "\n")
        done = papers("ingest", str(tmp_path / "x.jsonl"), url=chroma_url, store_dir=tmp_path,
                      PAPERS_COLLECTION="leased", PAPERS_WRITER_WAIT="0")
        assert done.returncode == 1 and "\n" not in done.stderr.strip(), done.stderr
        assert f"(pid {os.getpid()} on " in done.stderr and f"is writing to {chroma_url}" in done.stderr
    assert WriterLeases(settings).current() is None  # released

    leases = WriterLeases(settings)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that no longer runs
    here, now = socket_mod.gethostname(), time.time()
    cases = [({"pid": gone.pid, "host": here, "expires": now + 600}, "it is no longer running"),
             ({"pid": 1, "host": "other-host", "expires": now - 1}, "its lease expired")]
    for record, why in cases:
        leases.claim({"token": "t-" + why[:3], "command": "papers ingest", "since": "then", **record})
        notices = []
        with WriterLock(settings, notices.append):
            pass
        assert len(notices) == 1 and notices[0].endswith(f"did not release it ({why})"), notices
    leases.claim({"token": "alive", "command": "papers ingest", "pid": 1, "host": "other-host",
                  "since": "now", "expires": time.time() + 600})
    with pytest.raises(StoreLockedError, match=r"papers ingest \(pid 1 on other-host, since now\)"):
        WriterLock(settings).__enter__()
    leases.remove("alive")


def test_chroma_server_vanishing_mid_ingest(tmp_path):
    """The server is killed while an ingest writes: one line; restarted, the ingest resumes."""
    if not CHROMA.exists():
        pytest.skip(f"{CHROMA} is not installed")
    import re

    from test_store import summary, synthetic_rows, write_jsonl

    root = tmp_path / "server"
    root.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    corpus = write_jsonl(tmp_path / "many.jsonl", synthetic_rows(150, seed=61))
    server = start_chroma(root, port)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERS_")}
        env.update(LOOPBACK, PAPERS_CHROMA_URL=url, PAPERS_STORE_DIR=str(tmp_path / "none"),
                   PAPERS_CACHE_DIR=os.environ["PAPERS_CACHE_DIR"])
        proc = subprocess.Popen([sys.executable, "-c", _GUARDED_CLI, "ingest", str(corpus)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

        lines = []
        for line in proc.stderr:  # "stored N/150 papers" once a group is written
            lines.append(line)
            if (m := re.match(r"stored (\d+)/", line)) and int(m.group(1)) > 0:
                stored = int(m.group(1))
                server.kill()
                server.wait()
                break
        lines += proc.stderr.readlines()
        proc.wait(timeout=120)
        text = "".join(lines)
        assert proc.returncode == 1 and "Traceback" not in text, text[-3000:]
        errors = [line for line in lines if line.startswith("Error: ")]
        assert errors == [f"Error: lost the Chroma server at {url} (ConnectError): start it again and "
                          "rerun the command (`papers ingest` resumes where it stopped)\n"], text[-2000:]
        server = start_chroma(root, port)  # the advice: start it again, run the ingest again
        done = papers("ingest", str(corpus), url=url, store_dir=tmp_path / "none")
        assert done.returncode == 0, done.stderr
        got = summary(done.stdout)
        assert got["unchanged"] >= stored and got["papers"] == 150
        assert "took over the writer lock" in done.stderr and "(it is no longer running)" in done.stderr
        checked = papers("check", url=url, store_dir=tmp_path / "none")
        assert checked.returncode == 0 and "150 papers, 150 chunks; every chunk has its vector" in checked.stdout
    finally:
        stop_chroma(server)
