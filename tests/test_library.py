"""One library from any folder: the per-user location, --library / --store / PAPERS_STORE_DIR,
named libraries side by side, a ./store found and said, `stats --json`, and the bundled library
built on first use by the CLI and the Python API alike.

Every test runs in a fresh temporary folder with the per-user data folder in tmp_path
(PAPERS_DATA_DIR), never the real one, and with no PAPERS_STORE_DIR unless it sets one.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from netguard import GUARDED_CLI

from assistant.config import Settings
from assistant.errors import PapersError
from assistant.library import with_library

LIBRARY = Path(__file__).parent / "data" / "library"
GAP = "Efficient Continual Pre-training by Mitigating the Stability Gap"
BUILD = "`papers ingest` (the bundled collection) or `papers ingest FILE...` (.bib, .ris, .jsonl, .csv)"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh working folder; the per-user data folder is tmp_path/data."""
    monkeypatch.delenv("PAPERS_STORE_DIR", raising=False)
    monkeypatch.setenv("PAPERS_DATA_DIR", str(tmp_path / "data"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


def papers(*args: str, cwd: Path, data: Path, **extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERS_")}
    env.update(PAPERS_CACHE_DIR=os.environ["PAPERS_CACHE_DIR"], PAPERS_DATA_DIR=str(data), **extra)
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, "-c", GUARDED_CLI, *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


def ok(done: subprocess.CompletedProcess, code: int = 0) -> subprocess.CompletedProcess:
    assert done.returncode == code, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done


def one_line(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------- where it is


def test_settings_find_the_library(home, monkeypatch):
    data = home / "data"
    settings = Settings()
    assert (settings.store_dir, settings.store_origin) == (data / "libraries" / "papers", "library")
    work = Settings(library="work")
    assert (work.store_dir, work.store_origin, work.collection) == (
        data / "libraries" / "work", "library", "papers")  # a folder each, one collection name
    assert with_library(settings, "work").store_dir == work.store_dir
    assert with_library(settings, store=Path("elsewhere")).store_dir == Path("elsewhere")
    monkeypatch.setenv("PAPERS_STORE_DIR", "from-env")
    assert (Settings().store_dir, Settings().store_origin) == (Path("from-env"), "explicit")
    assert with_library(Settings(), "work").store_dir == work.store_dir  # --library beats the env
    with pytest.raises(PapersError) as info:
        with_library(settings, "../outside")
    assert str(info.value) == ("'../outside' is no library name: use letters, digits, '.', '_' or "
                               "'-' (at most 64, starting with a letter or digit)")


def test_a_store_in_the_working_folder_is_found(home):
    (home / "work" / "store").mkdir()
    assert Settings().store_origin == "library"  # an empty store/ (a checkout's) is no library
    (home / "work" / "store" / "chroma.sqlite3").write_bytes(b"")
    settings = Settings()
    assert (settings.store_dir, settings.store_origin) == (home / "work" / "store", "cwd")
    assert Settings(library="papers").store_origin == "library"  # named: the per-user one
    server = Settings(chroma_url="http://127.0.0.1:9", library="work")
    assert server.collection == "work"  # with a Chroma server a library is a collection


# --------------------------------------------------------------------------- the CLI


def test_one_library_from_any_folder(tmp_path):
    data = tmp_path / "data"
    store = data / "libraries" / "papers"
    ok(papers("ingest", str(LIBRARY / "zotero.bib"), str(LIBRARY / "zotero.ris"),
              cwd=tmp_path / "a", data=data), code=3)
    done = ok(papers("stats", "--json", cwd=tmp_path / "b", data=data))
    assert done.stderr == ""
    info = json.loads(done.stdout)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info.pop("last_ingest"))
    assert info == {
        "library": "papers", "store": str(store), "origin": "library", "exists": True,
        "papers": 7, "chunks": 7,
        "sources": {"zotero.bib": {"papers": 5, "chunks": 5}, "zotero.ris": {"papers": 3, "chunks": 3}},
        "embedding_model": "all-MiniLM-L6-v2-int8", "chunk_size": 220, "chunk_overlap": 40,
    }
    done = ok(papers("search", "walrus haul-out audio", "--json", "-k", "1", cwd=tmp_path / "c",
                     data=data))
    assert json.loads(done.stdout)["results"][0]["title"] == (
        "Listening to Walruses: Self-Supervised Audio Models for Arctic Haul-out Monitoring")

    text = ok(papers("stats", cwd=tmp_path / "c", data=data)).stdout.splitlines()
    assert text[:7] == ["library: papers", f"store: {store}", "papers: 7", "chunks: 7", "sources:",
                        "  zotero.bib: 5 papers, 5 chunks", "  zotero.ris: 3 papers, 3 chunks"]


def test_named_libraries_side_by_side(tmp_path):
    data = tmp_path / "data"
    ok(papers("ingest", str(LIBRARY / "jabref.bib"), "--library", "work", cwd=tmp_path, data=data),
       code=3)
    ok(papers("ingest", str(LIBRARY / "scholar.bib"), cwd=tmp_path, data=data), code=3)
    done = ok(papers("libraries", cwd=tmp_path, data=data))
    assert done.stdout.splitlines() == [f"Libraries in {data / 'libraries'} (* in use):",
                                        "* papers: 2 papers, 2 chunks",
                                        "  work: 4 papers, 4 chunks"]
    listed = json.loads(ok(papers("libraries", "--json", cwd=tmp_path, data=data)).stdout)
    assert listed == {"folder": str(data / "libraries"), "libraries": [
        {"name": "papers", "store": str(data / "libraries" / "papers"), "papers": 2,
         "chunks": 2, "used": True, "problem": None},
        {"name": "work", "store": str(data / "libraries" / "work"), "papers": 4, "chunks": 4,
         "used": False, "problem": None}]}
    info = json.loads(ok(papers("stats", "--json", "--library", "work", cwd=tmp_path,
                                data=data)).stdout)
    assert (info["library"], info["papers"], list(info["sources"])) == ("work", 4, ["jabref.bib"])


def test_no_library_yet(tmp_path):
    data = tmp_path / "data"
    done = ok(papers("stats", cwd=tmp_path, data=data))
    assert one_line(done.stdout) == (
        f"No library at {data / 'libraries' / 'papers'} yet: build it with {BUILD}.")
    info = json.loads(ok(papers("stats", "--json", "--library", "work", cwd=tmp_path,
                                data=data)).stdout)
    assert info == {"library": "work", "store": str(data / "libraries" / "work"),
                    "origin": "library", "exists": False, "papers": 0, "chunks": 0,
                    "build": "`papers ingest --library work` (the bundled collection) or "
                             "`papers ingest --library work FILE...` (.bib, .ris, .jsonl, .csv)"}
    done = ok(papers("libraries", cwd=tmp_path, data=data))
    assert one_line(done.stdout) == (
        f"No libraries in {data / 'libraries'} yet: `papers ingest` builds one.")
    # A named library is never built from the bundled collection: a typo must not fill a folder.
    done = ok(papers("search", "tides", "--library", "wrok", cwd=tmp_path, data=data), code=1)
    assert one_line(done.stderr) == (
        f"Error: no library named wrok at {data / 'libraries' / 'wrok'}: build it with "
        "`papers ingest --library wrok FILE...` (`papers libraries` lists the libraries)")
    done = ok(papers("stats", "--library", "a/b", cwd=tmp_path, data=data), code=1)
    assert one_line(done.stderr) == (
        "Error: 'a/b' is no library name: use letters, digits, '.', '_' or '-' (at most 64, "
        "starting with a letter or digit)")
    assert not data.exists()  # looking created nothing


def test_a_store_here_is_used_and_said_not_shadowed(tmp_path):
    data, here = tmp_path / "data", tmp_path / "project"
    home = data / "libraries" / "papers"
    ok(papers("ingest", str(LIBRARY / "scholar.bib"), "--store", "store", cwd=here, data=data),
       code=3)
    done = ok(papers("stats", "--json", cwd=here, data=data))
    assert one_line(done.stderr) == (
        f"Using the library in {here / 'store'} (found in this folder), not the per-user one; to "
        f"use it from any folder, move it there: mv {here / 'store'} {home}")
    assert json.loads(done.stdout)["store"] == str(here / "store")

    ok(papers("ingest", str(LIBRARY / "zotero.bib"), "--library", "papers", cwd=here, data=data),
       code=3)
    done = ok(papers("stats", "--json", cwd=here, data=data))
    assert one_line(done.stderr) == (
        f"Using the library in {here / 'store'} (found in this folder); your per-user library "
        f"{home} is not used here (--library papers uses it); to keep both, mv {here / 'store'} "
        f"{data / 'libraries' / 'store'} and use --library store")
    assert json.loads(done.stdout)["papers"] == 2  # the one here: scholar.bib's
    done = ok(papers("stats", "--json", "--library", "papers", cwd=here, data=data))
    assert done.stderr == "" and json.loads(done.stdout)["papers"] == 5  # zotero.bib's

    (here / "store").rename(data / "libraries" / "store")  # the advice works
    done = ok(papers("stats", "--json", "--library", "store", cwd=tmp_path, data=data))
    assert json.loads(done.stdout)["papers"] == 2


def test_search_in_a_new_folder_builds_the_bundled_library_saying_so(tmp_path):
    data = tmp_path / "data"
    done = ok(papers("search", "stability gap", "--json", "-k", "1", cwd=tmp_path, data=data))
    lines = done.stderr.splitlines()
    assert lines[0] == (f"No library at {data / 'libraries' / 'papers'} yet: ingesting the bundled "
                        "collection (399 papers, a few seconds, once)...")
    assert re.fullmatch(r"Stored 399 papers \(704 chunks\) in \d+ s\.", lines[-1])
    assert json.loads(done.stdout)["results"][0]["title"] == GAP


# --------------------------------------------------------------------------- the Python API


def test_assistant_in_a_new_folder_finds_or_builds_the_library(home):
    """The README's Python example, up to the model call: `Assistant()` with no settings."""
    from assistant import Assistant

    with Assistant() as assistant:
        hits = assistant.search("continual pre-training", k=3)
        assert GAP in [h.title for h in hits]
    assert (home / "data" / "libraries" / "papers" / "chroma.sqlite3").is_file()
    assert not (home / "work" / "store").exists()

    from assistant.library import stats

    info = stats(Settings())
    assert (info["papers"], info["chunks"], info["origin"]) == (399, 704, "library")
    assert list(info["sources"]) == ["000_f4c403a82406db2a.txt", "003_958efcd1eedfa573.txt",
                                     "004_6aae409bf07b199f.txt"]
