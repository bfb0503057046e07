"""Answers out (issue 16, part 3): Markdown with numbered references, BibTeX of the cited papers.

Exact text for hand-made records; BibTeX round-trips through bibtexparser; the CLI's
`papers search --format bibtex` over a real Zotero export keeps each entry as the file had it.
"""

from __future__ import annotations

import bibtexparser
import pytest

from assistant.export import bibtex, citekey, markdown, reference
from assistant.types import Answer, Citation, Claim, Paper, Related, Source
from test_cli_search import papers

GAP = Paper("arxiv:2406.14833", "Efficient Continual Pre-training by Mitigating the Stability Gap",
            "Performance first drops, then recovers.",
            authors=("Yiduo Guo", "Jie Fu", "Huishuai Zhang"), year=2024,
            arxiv_id="2406.14833", doi="10.48550/arxiv.2406.14833")
TIDE = Paper("doi:10.1016/j.ocemod.2022.102011", "Sub-quadratic Tide Prediction with Fourier "
             "Neural Operators", "We train a Fourier neural operator on 14 years of records.",
             authors=("Jörg Müller", "Benoît Thérien"), year=2022,
             doi="10.1016/j.ocemod.2022.102011")
BARE = Paper("p-bare", "A Paper From a Page Dump & Its 100% Claims", "Only an abstract.")
FROM_BIB = Paper("p-bib", "Walruses", "Listening.", citekey="smith_walrus_2021",
                 bibtex="@article{smith_walrus_2021,\n  title = {Walruses},\n  year = {2021}\n}")


def _answer() -> Answer:
    sources = (Source(1, GAP.paper_id, GAP.title, "Performance first drops, then recovers.", 0.9,
                      2024),
               Source(2, TIDE.paper_id, TIDE.title, "We train a Fourier neural operator.", 0.8,
                      2022))
    text = ("The stability gap is a drop then a recovery [1]; tides are forecast by a neural "
            "operator [2].\n\nEvidence:\n[1] ...\n[2] ...")
    return Answer("Which papers study forecasting or the stability gap?", text,
                  tuple(Citation(s.n, s.paper_id, s.title, s.text) for s in sources), sources,
                  False, "m", claims=(Claim("The stability gap ... [1].", (1,), True),),
                  related=(Related("p-bib", "Walruses", 2021),), papers=(GAP, TIDE))


def test_markdown_has_the_question_the_answer_the_evidence_list_and_numbered_references():
    assert markdown(_answer()) == (
        "## Which papers study forecasting or the stability gap?\n\n"
        "The stability gap is a drop then a recovery [1]; tides are forecast by a neural "
        "operator [2].\n\n**Evidence**\n\n"
        "- [1] *Efficient Continual Pre-training by Mitigating the Stability Gap* (2024): "
        "\"Performance first drops, then recovers.\"\n"
        "- [2] *Sub-quadratic Tide Prediction with Fourier Neural Operators* (2022): "
        "\"We train a Fourier neural operator.\"\n\n"
        "Related, not cited: Walruses (2021)\n\n"
        "### References\n\n"
        "1. Yiduo Guo, Jie Fu, Huishuai Zhang (2024). *Efficient Continual Pre-training by "
        "Mitigating the Stability Gap*. arXiv:2406.14833 doi:10.48550/arxiv.2406.14833 "
        "<https://arxiv.org/abs/2406.14833>\n"
        "2. Jörg Müller, Benoît Thérien (2022). *Sub-quadratic Tide Prediction with Fourier "
        "Neural Operators*. doi:10.1016/j.ocemod.2022.102011 "
        "<https://doi.org/10.1016/j.ocemod.2022.102011>\n")
    assert _answer().to_markdown() == markdown(_answer())


def test_a_reference_leaves_out_what_the_record_lacks():
    assert reference(BARE) == r"*A Paper From a Page Dump & Its 100% Claims*."


def test_generated_bibtex_round_trips_through_bibtexparser():
    text = bibtex([GAP, TIDE, BARE, GAP])
    library = bibtexparser.parse_string(text)
    assert not library.failed_blocks
    entries = library.entries
    assert [e.key for e in entries] == ["guo2024efficient", "muller2022sub",
                                        "anonpaper", "guo2024efficienta"]
    gap = entries[0]
    assert gap.entry_type == "misc"
    assert gap.fields_dict["title"].value == "{Efficient Continual Pre-training by Mitigating the Stability Gap}"
    assert gap.fields_dict["eprint"].value == "2406.14833"
    assert gap.fields_dict["archivePrefix"].value == "arXiv"
    assert gap.fields_dict["author"].value == "Yiduo Guo and Jie Fu and Huishuai Zhang"
    assert entries[1].entry_type == "article" and entries[1].fields_dict["doi"].value == TIDE.doi
    assert entries[2].fields_dict["title"].value == r"{A Paper From a Page Dump \& Its 100\% Claims}"


def test_a_paper_from_a_bib_keeps_its_own_entry_and_key():
    text = bibtex([FROM_BIB, GAP])
    assert text.startswith(FROM_BIB.bibtex + "\n\n@misc{guo2024efficient,")
    assert citekey(GAP) == "guo2024efficient"


def test_answer_bibtex_is_the_cited_papers_in_citation_order():
    keys = [e.key for e in bibtexparser.parse_string(_answer().bibtex()).entries]
    assert keys == ["guo2024efficient", "muller2022sub"]


@pytest.fixture(scope="module")
def zotero_store(tmp_path_factory):
    from pathlib import Path

    from assistant.config import Settings
    from assistant.ingest import ingest

    root = tmp_path_factory.mktemp("zotero")
    settings = Settings(store_dir=root / "store",
                        cache_dir=tmp_path_factory.getbasetemp() / "papers-cache")
    ingest(settings, [Path(__file__).parent / "data" / "library" / "zotero.bib"])
    return settings


def test_search_format_bibtex_gives_the_entries_as_zotero_wrote_them(zotero_store):
    done = papers("search", "stability gap during continual pre-training", "-k", "1",
                  "--format", "bibtex", store_dir=zotero_store.store_dir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("@misc{guo_efficient_2024,")
    assert "author = {Guo, Yiduo and Fu, Jie" in done.stdout
    assert [e.key for e in bibtexparser.parse_string(done.stdout).entries] == ["guo_efficient_2024"]
