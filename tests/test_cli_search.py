"""`papers search` and `papers stats` as a user runs them: a real subprocess per command."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from netguard import GUARDED_CLI as _GUARDED_CLI  # `papers` behind the loopback-only guard

STABILITY_GAP = "Efficient Continual Pre-training by Mitigating the Stability Gap"



def papers(*args: str, store_dir: Path, cwd: Path | None = None,
           cache_dir: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERS_")}
    env["PAPERS_STORE_DIR"] = str(store_dir)
    env["PAPERS_CACHE_DIR"] = str(cache_dir or os.environ["PAPERS_CACHE_DIR"])
    return subprocess.run([sys.executable, "-c", _GUARDED_CLI, *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


def search_json(*args: str, store_dir: Path) -> dict:
    done = papers("search", *args, "--json", store_dir=store_dir)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return json.loads(done.stdout)


# --------------------------------------------------------------------------- bundled collection


def test_search_json_shape(bundled_store):
    got = search_json("stability gap", store_dir=bundled_store.store_dir)
    assert list(got) == ["query", "results"]
    assert got["query"] == "stability gap"
    results = got["results"]
    assert len(results) == 10  # the CLI's default -k
    for i, r in enumerate(results, start=1):
        assert list(r) == ["rank", "title", "paper_id", "score", "snippet"]
        assert r["rank"] == i
        assert isinstance(r["title"], str) and r["title"]
        assert isinstance(r["paper_id"], str) and r["paper_id"].startswith(("t:", "arxiv:"))
        assert isinstance(r["score"], float) and 0 < r["score"] <= 1
        assert r["score"] == round(r["score"], 4)
        assert isinstance(r["snippet"], str) and 0 < len(r["snippet"]) <= 200
    assert results[0]["title"] == STABILITY_GAP
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    assert len({r["paper_id"] for r in results}) == len(results)


def test_search_k_and_unicode_query(bundled_store):
    got = search_json("pré-entraînement continu — stability gap", "-k", "3",
                      store_dir=bundled_store.store_dir)
    assert got["query"] == "pré-entraînement continu — stability gap"
    assert [r["rank"] for r in got["results"]] == [1, 2, 3]
    assert got["results"][0]["title"] == STABILITY_GAP


def test_search_table(bundled_store):
    """Header #, title, score, snippet; one row per hit, ranked, with the JSON's scores."""
    done = papers("search", "stability gap", "-k", "3", store_dir=bundled_store.store_dir)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = next(line for line in lines if "title" in line and "snippet" in line)
    assert re.findall(r"#|title|score|snippet", header) == ["#", "title", "score", "snippet"]
    rows = [m for line in lines if (m := re.match(r"\W*(\d+)\W+(.*?)\s+(\d\.\d{3})\b", line))]
    assert [m.group(1) for m in rows] == ["1", "2", "3"], done.stdout
    expected = search_json("stability gap", "-k", "3", store_dir=bundled_store.store_dir)
    assert [m.group(3) for m in rows] == [f"{r['score']:.3f}" for r in expected["results"]]
    assert rows[0].group(2).startswith("Efficient Continual")  # the title column, wrapped


def test_search_with_no_match(bundled_store):
    # The bundled page dumps carry no years, so a year filter leaves nothing.
    done = papers("search", "stability gap", "--year-min", "2000",
                  store_dir=bundled_store.store_dir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "No papers match."
    got = search_json("stability gap", "--year-min", "2000", store_dir=bundled_store.store_dir)
    assert got == {"query": "stability gap", "results": []}


@pytest.mark.parametrize("args", [["search", "x", "-k", "0"], ["search"], ["no-such-command"]])
def test_usage_errors_are_one_line(tmp_path, args):
    done = papers(*args, store_dir=tmp_path / "store")
    assert "Traceback" not in done.stderr
    assert done.returncode == 2
    assert done.stdout == ""
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].endswith((".", "1")), done.stderr  # one complete line
    # Around it only click's usage line and help hint: nothing else, no wrapped continuation.
    others = [line for line in done.stderr.splitlines() if line.strip() and line not in errors]
    assert [line.split()[0] for line in others] == ["Usage:", "Try"], done.stderr


def test_stats(bundled_store):
    done = papers("stats", store_dir=bundled_store.store_dir)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    assert lines["papers"] == "399"
    assert lines["chunks"] == "704"
    assert lines["store"] == str(bundled_store.store_dir.resolve())
    assert lines["embedding model"] == "all-MiniLM-L6-v2-int8"
    assert (lines["chunk size"], lines["chunk overlap"]) == ("220", "40")


def test_search_table_shows_titles_verbatim(tmp_path):
    row = {"title": "Closing [/] and [bold] Tags", "abstract": "Square brackets in paper titles "
           "must be printed as they are, not read as console markup by the table."}
    (tmp_path / "p.jsonl").write_text(json.dumps(row) + "\n")
    assert papers("ingest", "p.jsonl", store_dir=tmp_path / "store", cwd=tmp_path).returncode == 0
    done = papers("search", "square brackets", store_dir=tmp_path / "store")
    assert "Traceback" not in done.stderr
    assert "[/]" in done.stdout and "[bold]" in done.stdout


# --------------------------------------------------------------------------- filters


@pytest.fixture(scope="module")
def filtered_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-filters")
    rows = {
        "old.jsonl": [
            {"title": "Penguin Huddles in Antarctic Winter", "year": 2015, "categories": "q-bio.PE",
             "abstract": "Emperor penguins huddle to survive the Antarctic winter; we model how "
                         "penguin huddles rotate so every bird gets a turn in the warm centre."},
            {"title": "Penguin Colony Counting from Aerial Photos", "year": 2019,
             "categories": "cs.CV q-bio.PE",
             "abstract": "We count penguins in colonies from drone and aerial photographs with a "
                         "detection network trained on annotated penguin images."},
        ],
        "new.jsonl": [
            {"title": "Tracking Penguin Foraging with Accelerometers", "year": 2023,
             "categories": "q-bio.PE",
             "abstract": "Accelerometer tags on penguins reveal foraging dives; a recurrent model "
                         "classifies each dive as successful prey capture or not."},
            {"title": "Segmenting Sea Ice in Satellite Radar", "year": 2022, "categories": "cs.CV",
             "abstract": "Sea ice is segmented in synthetic aperture radar images with a U-Net, "
                         "giving daily maps for shipping and for penguin habitat studies."},
        ],
    }
    for name, items in rows.items():
        (root / name).write_text("".join(json.dumps(r) + "\n" for r in items))
    store_dir = root / "store"
    done = papers("ingest", "old.jsonl", "new.jsonl", store_dir=store_dir, cwd=root,
                  cache_dir=tmp_path_factory.getbasetemp() / "papers-cache")
    assert done.returncode == 0, done.stderr
    return store_dir


@pytest.mark.parametrize("args, titles", [
    ([], {"Penguin Huddles in Antarctic Winter", "Penguin Colony Counting from Aerial Photos",
          "Tracking Penguin Foraging with Accelerometers", "Segmenting Sea Ice in Satellite Radar"}),
    (["--year-min", "2020"], {"Tracking Penguin Foraging with Accelerometers",
                              "Segmenting Sea Ice in Satellite Radar"}),
    (["--year-max", "2019"], {"Penguin Huddles in Antarctic Winter",
                              "Penguin Colony Counting from Aerial Photos"}),
    (["--category", "cs.CV"], {"Penguin Colony Counting from Aerial Photos",
                               "Segmenting Sea Ice in Satellite Radar"}),
    (["--source", "new.jsonl"], {"Tracking Penguin Foraging with Accelerometers",
                                 "Segmenting Sea Ice in Satellite Radar"}),
    (["--category", "cs.CV", "--year-max", "2020", "--source", "old.jsonl"],
     {"Penguin Colony Counting from Aerial Photos"}),
    (["--category", "cs.CL"], set()),
])
def test_search_filters(filtered_store, args, titles):
    got = search_json("penguins", *args, store_dir=filtered_store)
    assert {r["title"] for r in got["results"]} == titles
