"""BibTeX and RIS through ingest and the store: one paper per DOI or arXiv id across files and
across ingests, idempotent and resumable re-ingests, every field kept for `Store.paper`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from netguard import GUARDED_CLI

from assistant.config import Settings
from assistant.corpus import read_papers
from assistant.errors import CorpusError
from assistant.ingest import GROUP_CHUNKS, ingest
from assistant.store import Store

LIBRARY = Path(__file__).parent / "data" / "library"
GAP = "Efficient Continual Pre-training by Mitigating the Stability Gap"


def fake_embed(texts):
    """Unit vectors that depend only on the text (no model: these tests are about identity)."""
    rows = []
    for text in texts:
        seed = int.from_bytes(hashlib.sha1(text.encode()).digest()[:4], "little")
        v = np.random.default_rng(seed).normal(size=384).astype(np.float32)
        rows.append(v / np.linalg.norm(v))
    return np.stack(rows)


def settings_for(store_dir: Path) -> Settings:
    return Settings(store_dir=store_dir, cache_dir=Path(os.environ["PAPERS_CACHE_DIR"]))


def run(settings: Settings, *paths: Path, **kw):
    return ingest(settings, list(paths) or None, embed=fake_embed, **kw)


def counts(report) -> tuple[int, int, int, int]:
    return report.added, report.updated, report.unchanged, report.skipped


def snapshot_record(arxiv: str, title: str, abstract: str, categories: str) -> dict:
    """One line of the arXiv metadata snapshot, as Kaggle ships it."""
    return {"id": arxiv, "submitter": "A. Submitter", "authors": "R. Haddad and B. Kov\\'acs",
            "title": title, "comments": "12 pages", "journal-ref": None, "doi": None,
            "categories": categories, "license": None, "abstract": f"  {abstract}\n",
            "versions": [{"version": "v1", "created": "Mon, 2 Oct 2023 10:00:00 GMT"}],
            "update_date": "2023-10-03", "authors_parsed": []}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- re-ingest


def test_library_ingest_reingest_and_every_field_back_from_the_store(tmp_path):
    settings = settings_for(tmp_path / "store")
    first = run(settings, LIBRARY)
    assert counts(first) == (13, 0, 0, 5)
    assert (first.papers, first.chunks) == (13, 13)
    assert [str(p).replace(str(LIBRARY) + "/", "") for p in first.problems] == [
        "jabref.bib:40: citation key Lindqvist2024 used twice (first at line 6)",
        "jabref.bib:48: cannot parse entry Brandt2021: Unexpected block start: `@Article`. "
        "Was still looking for field-value closing `,` or `}`",
        "scholar.bib:1: missing abstract (entry guo2024efficient)",
        "zotero.bib:48: missing abstract (entry sato_seismic_2021)",
        'zotero.ris:40: missing abstract (AB) in "Acoustic Deterrents for Harbour Porpoises '
        'near Tidal Turbines"',
    ]
    again = run(settings, LIBRARY)
    assert counts(again) == (0, 0, 13, 5) and again.chunks_written == 0

    store = Store.open(settings)
    for paper in read_papers([LIBRARY]).papers:  # everything part 3 needs, as read
        assert store.paper(paper.paper_id) == paper
    haddad = store.paper("arxiv:2310.01234")
    assert haddad.bibtex.startswith("@Misc{Haddad2023,\n  author        = {Haddad, Rania and")
    assert (haddad.citekey, haddad.arxiv_id, haddad.doi) == ("Haddad2023", "2310.01234", None)
    assert store.last_ingest is not None and store.last_ingest.endswith("Z")


def test_a_re_export_changes_nothing_and_an_added_entry_is_added(tmp_path):
    settings = settings_for(tmp_path / "store")
    export = tmp_path / "My Library.bib"
    shutil.copy(LIBRARY / "zotero.bib", export)
    assert counts(run(settings, export)) == (5, 0, 0, 1)
    shutil.copy(LIBRARY / "zotero.bib", export)  # Zotero writes the same file again
    assert counts(run(settings, export)) == (0, 0, 5, 1)
    added = (LIBRARY / "scholar.bib").read_text(encoding="utf-8").split("\n\n")[2]  # Lichen
    export.write_text(export.read_text(encoding="utf-8") + "\n" + added, encoding="utf-8")
    assert counts(run(settings, export)) == (1, 0, 5, 1)


def test_a_stopped_bib_ingest_resumes(tmp_path):
    settings = settings_for(tmp_path / "store")
    entries = [f"@article{{key{i},\n  title = {{Resumable {{Study}} Number {i}}},\n"
               f"  abstract = {{We measure quantity {i} twice. It grows.}},\n"
               f"  doi = {{10.5555/resume.{i}}},\n}}\n" for i in range(150)]
    big = tmp_path / "big.bib"
    big.write_text("\n".join(entries), encoding="utf-8")

    def stop(done: int, total: int) -> None:
        if done > 0:
            raise KeyboardInterrupt  # what Ctrl-C does between two groups

    with pytest.raises(KeyboardInterrupt):
        run(settings, big, progress=stop)
    stored = Store.open(settings).paper_states()
    assert len(stored) == GROUP_CHUNKS and all(s.complete for s in stored.values())
    resumed = run(settings, big)
    assert counts(resumed) == (150 - GROUP_CHUNKS, 0, GROUP_CHUNKS, 0)
    assert Store.open(settings).paper("doi:10.5555/resume.149").citekey == "key149"


def test_strict_aborts_before_writing(tmp_path):
    settings = settings_for(tmp_path / "store")
    with pytest.raises(CorpusError) as info:
        run(settings, LIBRARY / "jabref.bib", strict=True)
    assert str(info.value) == (
        f"2 malformed records (first: {LIBRARY / 'jabref.bib'}:40: citation key Lindqvist2024 "
        f"used twice (first at line 6); {LIBRARY / 'jabref.bib'}:48: cannot parse entry "
        "Brandt2021: Unexpected block start: `@Article`. Was still looking for field-value "
        "closing `,` or `}`); fix them or drop --strict")
    assert not (tmp_path / "store").exists()


# --------------------------------------------------------------------------- identity across ingests


def test_a_bib_entry_joins_the_bundled_paper_with_its_title(bundled_store, tmp_path):
    store_dir = tmp_path / "store"
    shutil.copytree(bundled_store.store_dir, store_dir)
    settings = settings_for(store_dir)
    before = Store.open(settings)
    gap_id = next(pid for pid in before.paper_states() if before.paper(pid).title == GAP)
    bundled = before.paper(gap_id)

    assert counts(run(settings, LIBRARY / "zotero.bib")) == (4, 1, 0, 1)
    gap = Store.open(settings).paper(gap_id)  # one paper: the page dump's id and text kept
    assert (gap.title, gap.abstract) == (bundled.title, bundled.abstract)
    assert gap.sources == bundled.sources + ("zotero.bib",)
    assert (gap.citekey, gap.arxiv_id, gap.year) == ("guo_efficient_2024", "2406.14833", 2024)
    assert gap.authors[0] == "Yiduo Guo" and gap.bibtex.startswith("@misc{guo_efficient_2024,")
    assert Store.open(settings).paper("arxiv:2406.14833") is None

    assert counts(run(settings, LIBRARY / "zotero.bib")) == (0, 0, 5, 1)
    assert counts(run(settings)) == (0, 0, 399, 0)  # the bundled collection again: no change
    assert Store.open(settings).paper(gap_id) == gap


@pytest.mark.parametrize("order", ["snapshot first", "bib first"])
def test_the_same_paper_from_the_arxiv_snapshot_and_a_bib_is_one_paper(tmp_path, order):
    settings = settings_for(tmp_path / "store")
    snapshot = write_jsonl(tmp_path / "arxiv-metadata-oai-snapshot.json", [
        snapshot_record("2310.01234", "Decoding the Honeybee Waggle Dance with\n  3D Pose "
                        "Estimation", "The waggle dance tells hive mates where food is.",
                        "q-bio.QM cs.CV"),
        snapshot_record("2005.06789", "Storm Surge Ensembles from Sparse Tide Gauges",
                        "Storm surge forecasts need ensembles.", "physics.ao-ph"),
    ])
    bib = LIBRARY / "jabref.bib"
    first, second = (snapshot, bib) if order == "snapshot first" else (bib, snapshot)
    assert run(settings, first).added == (2 if first == snapshot else 4)
    report = run(settings, second)
    assert (report.added, report.updated) == ((2, 2) if second == bib else (0, 2))
    assert report.papers == 4

    store = Store.open(settings)
    bee = store.paper("arxiv:2310.01234")
    assert bee.sources == (first.name, second.name)
    assert bee.citekey == "Haddad2023" and bee.bibtex.startswith("@Misc{Haddad2023,")
    kept = "The waggle dance tells hive mates where food is." if first == snapshot else \
        read_papers([bib]).papers[1].abstract
    assert bee.abstract == kept  # the first reading's text
    assert set(bee.categories) == {"q-bio.QM", "cs.CV", "honeybees", "pose estimation",
                                   "animal behaviour"}
    for path in (first, second, first):
        assert counts(run(settings, path))[:2] == (0, 0)  # re-ingests change nothing


def test_a_doi_finds_the_paper_stored_under_its_arxiv_id(tmp_path):
    """A paper stored as arXiv:X that also has DOI Y is found by a later record with Y only,
    whatever case the DOI is written in."""
    settings = settings_for(tmp_path / "store")
    bib = tmp_path / "preprint.bib"
    bib.write_text("@article{ivanova2023,\n  title = {Permafrost Thaw Slumps},\n"
                   "  abstract = {We map thaw slumps.},\n  eprint = {2311.04567},\n"
                   "  doi = {10.5555/Permafrost.2023},\n}\n", encoding="utf-8")
    assert run(settings, bib).added == 1
    ris = tmp_path / "published.ris"
    ris.write_text("TY  - JOUR\nTI  - Permafrost thaw slumps mapped with weak labels\n"
                   "AB  - The published version.\nDO  - 10.5555/PERMAFROST.2023\nER  - \n",
                   encoding="utf-8")
    report = run(settings, ris)
    assert (report.added, report.updated, report.papers) == (0, 1, 1)
    paper = Store.open(settings).paper("arxiv:2311.04567")
    assert paper.sources == ("preprint.bib", "published.ris")
    assert (paper.doi, paper.abstract) == ("10.5555/Permafrost.2023", "We map thaw slumps.")
    assert counts(run(settings, ris))[:2] == (0, 0)


def test_same_title_different_ids_stay_two_across_ingests(tmp_path):
    settings = settings_for(tmp_path / "store")
    page = tmp_path / "page.txt"
    page.write_text("Seismic Detection of Glacier Calving Events\n" + "Calving is loud. " * 20
                    + "\n", encoding="utf-8")
    run(settings, page)
    report = run(settings, LIBRARY / "zotero.bib")
    # The first DOI entry joins the page-dump paper (it had no id); the second stays apart.
    assert (report.added, report.updated) == (4, 1)
    states = Store.open(settings).paper_states()
    sato = [Store.open(settings).paper(pid) for pid in states]
    sato = [p for p in sato if p.title == "Seismic Detection of Glacier Calving Events"]
    assert sorted(p.doi for p in sato) == ["10.1029/2021JF006210", "10.1093/gji/ggab512"]
    assert next(p for p in sato if p.year == 2021).sources == ("page.txt", "zotero.bib")
    assert counts(run(settings, LIBRARY / "zotero.bib"))[:2] == (0, 0)
    assert counts(run(settings, page))[:2] == (0, 0)


# --------------------------------------------------------------------------- the CLI


def test_cli_reports_each_bad_record_and_exits_3(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERS_")}
    env.update(PAPERS_STORE_DIR=str(tmp_path / "store"),
               PAPERS_CACHE_DIR=os.environ["PAPERS_CACHE_DIR"])
    done = subprocess.run([sys.executable, "-c", GUARDED_CLI, "ingest", "library"],
                          capture_output=True, text=True, env=env, cwd=LIBRARY.parent, timeout=300)
    assert done.returncode == 3, done.stderr
    skipped = [line for line in done.stderr.splitlines() if line.startswith("skipped")]
    assert skipped == [
        "skipped library/jabref.bib:40: citation key Lindqvist2024 used twice (first at line 6)",
        "skipped library/jabref.bib:48: cannot parse entry Brandt2021: Unexpected block start: "
        "`@Article`. Was still looking for field-value closing `,` or `}`",
        "skipped library/scholar.bib:1: missing abstract (entry guo2024efficient)",
        "skipped library/zotero.bib:48: missing abstract (entry sato_seismic_2021)",
        'skipped library/zotero.ris:40: missing abstract (AB) in "Acoustic Deterrents for '
        'Harbour Porpoises near Tidal Turbines"',
    ]
    assert "Traceback" not in done.stderr
    assert " ".join(done.stdout.split()).startswith(
        "papers: 13 added, 0 updated, 0 unchanged, 5 skipped; chunks written: 13; "
        "store: 13 papers, 13 chunks;")
