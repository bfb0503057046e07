"""Paper state is paged, never all loaded (issue 15): ingest looks up the states of each batch's
papers only, `papers check` streams the store keeping only papers not yet seen whole, and both
find what reading every paper's state found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_bib_ingest import fake_embed, settings_for

from assistant import ingest as ingest_mod
from assistant import integrity
from assistant.chunking import chunk_paper, paper_fingerprint
from assistant.ingest import ingest
from assistant.store import Store, chunk_metadata
from assistant.types import Paper

cheap_embed = fake_embed  # unit vectors that depend only on the text


def rows(n: int, long_every: int = 5) -> list[dict]:
    """n papers as JSON Lines records (arXiv ids); every `long_every`-th has an abstract of
    several chunks."""
    out = []
    for i in range(n):
        words = " ".join(f"walrus{i} tusk{j} ice floe" for j in range(120 if i % long_every == 0 else 8))
        out.append({"id": f"2301.{i:05d}", "title": f"Paper number {i} on walruses",
                    "abstract": f"We study walrus {i}. {words}.", "year": 2023})
    return out


def bib(records: list[dict], eprint: bool = True) -> str:
    """Every third record as a BibTeX entry with a DOI (mixed case), and its arXiv id."""
    entries = []
    for r in records:
        i = int(r["id"].split(".")[1])
        if i % 3 == 0:
            arxiv = f"  eprint = {{{r['id']}}},\n  archiveprefix = {{arXiv}},\n" if eprint else ""
            entries.append(f"@article{{w{i},\n  title = {{{r['title']}}},\n  abstract = {{{r['abstract']}}},\n"
                           f"  year = {{2023}},\n  doi = {{10.1000/Walrus.{i}}},\n{arxiv}}}\n")
    return "\n".join(entries)


def write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def built(tmp_path):
    settings = settings_for(tmp_path / "store")
    source = write(tmp_path / "papers.jsonl", rows(40))
    ids = tmp_path / "ids.bib"
    ids.write_text(bib(rows(40)), encoding="utf-8")
    report = ingest(settings, [source, ids], embed=cheap_embed)
    assert report.added == 40
    return settings, [source, ids]


def test_batch_lookups_equal_reading_every_state(built):
    settings, _ = built
    store = Store.open(settings)
    every = store.paper_states()
    assert len(every) == 40 and any(st.n_chunks > 1 for st in every.values())
    assert sum(bool(st.aliases) for st in every.values()) == 14  # papers 0, 3, ..., 39
    some = sorted(every)[5:17]
    assert store.paper_states(some + ["arxiv:9999.99999"]) == {pid: every[pid] for pid in some}
    assert store.paper_states(some, vectors=False) == {pid: every[pid] for pid in some}
    assert store.paper_states([]) == {}
    survey = store.survey()
    assert (survey.papers, survey.no_vector, survey.unfinished) == (40, [], {})


def test_reingest_looks_up_batches_never_every_paper(built, monkeypatch):
    settings, sources = built
    calls: list[list[str] | None] = []
    real = Store.paper_states

    def spy(self, paper_ids=None, *, vectors=True):
        assert not vectors  # after the survey (and its repair) a lookup reads no vector
        calls.append(None if paper_ids is None else sorted(paper_ids))
        return real(self, paper_ids, vectors=vectors)

    monkeypatch.setattr(Store, "paper_states", spy)
    monkeypatch.setattr(Store, "aliases", lambda self: pytest.fail("every paper matched by its id"))
    monkeypatch.setattr(ingest_mod, "LOOKUP_PAPERS", 8)
    report = ingest(settings, sources, embed=cheap_embed)
    assert (report.added, report.updated, report.unchanged, report.papers) == (0, 0, 40, 40)
    assert None not in calls and len(calls) == 5  # 40 papers, 8 a batch
    # each batch asks for its papers' own ids and identities only (id, DOI, title hash)
    assert all(len(c) <= 8 * 3 for c in calls)
    assert len({pid for c in calls for pid in c if pid.startswith("arxiv:")}) == 40


def test_new_papers_and_aliases_match_as_before(built, tmp_path):
    settings, sources = built
    # The same papers known by their DOI only (upper case): matched by the stored papers' DOI
    # (an identity besides their arXiv ids), so stored under the arXiv id, not added.
    by_doi = tmp_path / "by_doi.bib"
    by_doi.write_text(bib(rows(40), eprint=False).replace("10.1000/Walrus", "10.1000/WALRUS"),
                      encoding="utf-8")
    new = write(tmp_path / "new.jsonl", [{"id": "2302.00001", "title": "A new walrus",
                                         "abstract": "Walruses swim far."}])
    report = ingest(settings, [*sources, by_doi, new], embed=cheap_embed)
    assert (report.added, report.updated, report.papers) == (1, 14, 41)
    store = Store.open(settings)
    assert not [pid for pid in store.paper_states() if pid.startswith("doi:")]
    assert "by_doi.bib" in store.paper("arxiv:2301.00003").sources


def test_prune_deletes_what_the_input_lacks(built, tmp_path):
    settings, (source, ids) = built
    write(source, rows(40)[:30])
    report = ingest(settings, [source, ids], prune=True, embed=cheap_embed)
    # papers 30-39 are gone but 30, 33, 36, 39, still in ids.bib
    assert (report.pruned, report.papers) == (6, 34)
    assert len(Store.open(settings).paper_states()) == 34


def _write_chunks(store: Store, paper: Paper, fp: str | None = None, only=None) -> None:
    chunks = chunk_paper(paper, 220, 40)
    fp = fp or paper_fingerprint(paper, 220, 40)
    keep = [c for c in chunks if only is None or c.position in only]
    store.upsert(keep, cheap_embed([c.embed_text for c in keep]),
                 [chunk_metadata(c, paper, fp) for c in keep])


def test_check_streams_and_finds_what_reading_every_state_found(tmp_path):
    settings = settings_for(tmp_path / "store")
    store = Store.open(settings, create=True)
    long = " ".join(f"walrus tusk {j} floe" for j in range(150))
    split = Paper("t:split", "Split paper", long, sources=("a.txt",))
    mixed = Paper("t:mixed", "Mixed paper", long, sources=("a.txt",))
    short = Paper("t:short", "Short paper", long, sources=("a.txt",))
    _write_chunks(store, split, only={0})  # its other chunks come after 30 other papers
    _write_chunks(store, mixed, fp="old")  # an older version's chunks ...
    for i in range(30):
        _write_chunks(store, Paper(f"t:p{i}", f"Paper {i}", f"Walrus {i} swims.", sources=("a.txt",)))
    _write_chunks(store, split, only=set(range(1, 20)))
    n = len(chunk_paper(mixed, 220, 40))
    _write_chunks(store, mixed, only=set(range(n - 1)))  # ... under a new one but its last
    _write_chunks(store, short, only={0, 1})  # a stopped ingest: chunks missing
    every = store.paper_states()
    survey = store.survey()
    assert survey.papers == len(every) == 33
    assert survey.unfinished == {pid: st for pid, st in every.items() if not st.complete}
    assert set(survey.unfinished) == {"t:mixed", "t:short"}
    report = integrity.check(settings)
    assert (report.papers, report.incomplete_papers, report.no_vector) == (33, 2, ())
