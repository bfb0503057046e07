"""BibTeX and RIS in: exports shaped as Zotero, JabRef, Google Scholar and Mendeley write them
(tests/data/library/, made by hand), every parsed field exact, LaTeX to text, bad records."""

from __future__ import annotations

import gzip
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from assistant.corpus import PaperStream, read_papers
from assistant.errors import CorpusError
from assistant.references import latex_text
from assistant.types import Paper

LIBRARY = Path(__file__).parent / "data" / "library"


def fields(paper: Paper) -> dict:
    """Every field but the BibTeX entry text (checked on its own)."""
    got = asdict(paper)
    got.pop("bibtex")
    return got


def lines_of(path: Path, first: int, last: int) -> str:
    return "\n".join(path.read_text(encoding="utf-8").splitlines()[first - 1 : last])


def read(name: str):
    return read_papers([LIBRARY / name])


def problems(result) -> list[str]:
    return [f"{Path(p.path).name}:{p.line}: {p.reason}" for p in result.problems]


# --------------------------------------------------------------------------- Zotero .bib

GUO = {
    "paper_id": "arxiv:2406.14833",
    "title": "Efficient Continual Pre-training by Mitigating the Stability Gap",
    "abstract": "Continual pre-training adapts a general language model to a new domain, but "
    "performance on the target domain first drops and only later recovers: the stability gap. "
    "We train on a well-chosen subset for several epochs, prefer high-quality subsets and mix "
    "in data similar to the pre-training corpus. A medical model improves average accuracy "
    "from 36.2% to 40.7% with 40% of the original budget.",
    "authors": ("Yiduo Guo", "Jie Fu", "Huishuai Zhang", "Dongyan Zhao", "Yikang Shen"),
    "year": 2024,
    "url": "http://arxiv.org/abs/2406.14833",
    "categories": ("Computer Science - Computation and Language",
                   "Computer Science - Machine Learning"),
    "sources": ("zotero.bib",),
    "doi": None,  # arXiv's own DOI (10.48550/arXiv.2406.14833) says no more than the id
    "arxiv_id": "2406.14833",
    "citekey": "guo_efficient_2024",
}
MULLER = {
    "paper_id": "doi:10.1016/j.ocemod.2022.102011",
    "title": "Sub-quadratic Tide Prediction with Fourier Neural Operators: O(n log n) Forecasts "
    "for Coastal Gauges",
    "abstract": "Harmonic analysis predicts tides well in the open ocean but fails in estuaries, "
    "where river discharge and shallow water distort the signal. We train a Fourier neural "
    "operator on 14 years of records from 212 coastal gauges and forecast water levels 72 "
    "hours ahead in O(n log n) time. The operator lowers the root-mean-square error by 31% "
    "against harmonic analysis (0.12–0.19 m against 0.18–0.27 m) and keeps an α-stable error "
    "distribution during storm surges.",
    "authors": ("Jörg Müller", "Benoît Thérien", "Mette Østergaard", "José Nuñez"),
    "year": 2022,
    "url": "https://www.sciencedirect.com/science/article/pii/S1463500322000117",
    "categories": ("Coastal gauges", "Fourier neural operator", "Tide prediction"),
    "sources": ("zotero.bib",),
    "doi": "10.1016/j.ocemod.2022.102011",
    "arxiv_id": None,
    "citekey": "muller_sub-quadratic_2022",
}
OKAFOR = {
    "paper_id": "doi:10.18653/v1/2023.bioacoustics-1.4",
    "title": "Listening to Walruses: Self-Supervised Audio Models for Arctic Haul-out Monitoring",
    "abstract": "Walrus haul-outs are monitored by aerial counts that are costly and rare. We "
    "record 1,900 hours of audio at three haul-out sites in Svalbard and pre-train a "
    "self-supervised audio model on it. Fine-tuned with 400 labelled clips, the model counts "
    "calling walruses with a mean absolute error of 3.1 animals & detects disturbance events "
    "from ships and aircraft with an F1 of 0.87.",
    "authors": ("Chiamaka Okafor", "Erik Lindqvist", "Norwegian Polar Institute"),
    "year": 2023,
    "url": "https://aclanthology.org/2023.bioacoustics-1.4",
    "categories": (),
    "sources": ("zotero.bib",),
    "doi": "10.18653/v1/2023.bioacoustics-1.4",
    "arxiv_id": None,
    "citekey": "okafor_listening_2023",
}
SATO_2021 = {
    "paper_id": "doi:10.1029/2021jf006210",  # the id folds case; the DOI keeps it
    "title": "Seismic Detection of Glacier Calving Events",
    "abstract": "Glacier calving releases seismic energy that regional networks record but "
    "rarely attribute. We build a catalogue of 2,318 calving events at eleven tidewater "
    "glaciers in Greenland from time-lapse cameras and train a convolutional detector on the "
    "matching seismograms from stations up to 150 km away. The detector finds 92% of the "
    "catalogued events and estimates the calved ice volume within a factor of two.",
    "authors": ("Haruki Sato", "Aoife Brennan", "Paweł Kowalczyk"),
    "year": 2021,
    "url": "https://doi.org/10.1029/2021JF006210",
    "categories": ("calving", "glaciers", "seismology"),
    "sources": ("zotero.bib",),
    "doi": "10.1029/2021JF006210",
    "arxiv_id": None,
    "citekey": "sato_seismic_2021-1",
}
SATO_2022 = {
    "paper_id": "doi:10.1093/gji/ggab512",
    "title": "Seismic Detection of Glacier Calving Events",
    "abstract": "We extend a seismic calving detector from Greenland to Antarctic ice shelves, "
    "where calving events are larger and rarer. Transfer learning from the Greenland catalogue "
    "with 140 Antarctic events recovers 85% of the calving events that satellite images "
    "confirm, and separates calving from icequakes caused by tides.",
    "authors": ("Haruki Sato", "Lucía Rivera"),
    "year": 2022,
    "url": "https://doi.org/10.1093/gji/ggab512",
    "categories": ("Antarctica", "calving", "transfer learning"),
    "sources": ("zotero.bib",),
    "doi": "10.1093/gji/ggab512",
    "arxiv_id": None,
    "citekey": "sato_seismic_2022",
}


def test_zotero_bib_every_field():
    result = read("zotero.bib")
    assert [fields(p) for p in result.papers] == [GUO, MULLER, OKAFOR, SATO_2021, SATO_2022]
    assert problems(result) == ["zotero.bib:48: missing abstract (entry sato_seismic_2021)"]
    assert result.records == 5


def test_the_original_entry_text_is_kept():
    path = LIBRARY / "zotero.bib"
    guo, muller, okafor, *_ = read("zotero.bib").papers
    assert guo.bibtex == lines_of(path, 2, 14)  # tabs, `month = jun`, the arXiv DOI: as written
    assert muller.bibtex == lines_of(path, 16, 30)
    assert muller.bibtex.startswith("@article{muller_sub-quadratic_2022,\n\ttitle = {Sub-quadratic")
    assert okafor.bibtex.endswith("\tpages = {31--44},\n}")


def test_same_title_with_different_dois_stays_two_papers():
    sato = [p for p in read("zotero.bib").papers if p.title.startswith("Seismic Detection")]
    assert [p.paper_id for p in sato] == ["doi:10.1029/2021jf006210", "doi:10.1093/gji/ggab512"]
    assert [p.year for p in sato] == [2021, 2022]


# --------------------------------------------------------------------------- JabRef .bib


def test_jabref_bib_strings_unicode_literal_percent_and_biblatex():
    result = read("jabref.bib")
    lindqvist, haddad, ferreira, rivera = result.papers
    assert fields(lindqvist) == {
        "paper_id": "doi:10.1111/mms.13045",
        "title": "Counting Walrus Calls from Drifting Hydrophones",
        "abstract": "Drifting hydrophones record walrus calls far from haul-outs, where cameras "
        "cannot see. We detect knocks and bell sounds in 6,400 hours of drifting recordings "
        "from the Barents Sea and estimate how many animals call nearby from the rate and "
        "loudness of calls. Estimates agree with aerial surveys within 18%, and show that "
        "walruses follow the retreating sea ice edge by 30–60 km a week.",  # a bare % is text
        "authors": ("Erik Lindqvist", "Åsa Ström", "Chiamaka Okafor"),
        "year": 2024,
        "url": "https://doi.org/10.1111/mms.13045",
        "categories": ("walrus", "passive acoustics", "sea ice"),
        "sources": ("jabref.bib",),
        "doi": "10.1111/mms.13045",
        "arxiv_id": None,
        "citekey": "Lindqvist2024",
    }
    assert fields(haddad) == {
        "paper_id": "arxiv:2310.01234",
        "title": "Decoding the Honeybee Waggle Dance with 3D Pose Estimation",
        "abstract": "The waggle dance tells hive mates the direction and distance of food. We "
        "track the dancer's body in 3D with four cameras and a pose-estimation model, and "
        "decode the “waggle run” angle and duration without hand labelling. On 1,150 annotated "
        "dances our decoder reads the direction within 9° and improves distance estimates by "
        "12% over 2D tracking.",
        "authors": ("Rania Haddad", "Bence Kovács", "Siobhán O'Neill"),
        "year": 2023,
        "url": "https://arxiv.org/abs/2310.01234",
        "categories": ("q-bio.QM", "honeybees", "pose estimation", "animal behaviour"),
        "sources": ("jabref.bib",),
        "doi": None,
        "arxiv_id": "2310.01234",
        "citekey": "Haddad2023",
    }
    assert fields(ferreira) == {
        "paper_id": ferreira.paper_id,
        "title": "Coral Reef Soundscapes – A Benchmark for Reef Health Classification",
        "abstract": "Healthy reefs are loud: snapping shrimp and fish fill them with sound, while "
        "degraded reefs fall quiet. We release 2,700 one-minute recordings from 41 reefs in "
        "Indonesia and Brazil, labelled healthy, degraded or restored by divers, and a "
        "benchmark of classifiers on them. A small convolutional network separates healthy "
        "from degraded reefs with 0.91 balanced accuracy; restored reefs sound between the two.",
        "authors": ("Inês Ferreira", "Kenji Tanaka"),
        "year": 2022,
        "url": None,
        "categories": ("bioacoustics", "coral reefs", "benchmark"),
        "sources": ("jabref.bib",),
        "doi": None,
        "arxiv_id": None,
        "citekey": "Ferreira2022",
    }
    assert ferreira.paper_id.startswith("t:")  # no DOI, no arXiv id: its title
    assert fields(rivera) == {
        "paper_id": "arxiv:2005.06789",  # biblatex: eprinttype = {arxiv}, eprint with version
        "title": "Storm Surge Ensembles from Sparse Tide Gauges",
        "abstract": "Storm surge forecasts need ensembles, but sparse tide gauges constrain them "
        "poorly. We assimilate 38 gauges along the Chilean coast into a 50-member ensemble with "
        "an ensemble Kalman filter. Peak surge errors fall from 0.41 m to 0.22 m, and the "
        "ensemble spread matches the observed error for lead times up to 48 hours.",
        "authors": ("Lucía Rivera", "Mateo de la Cruz"),
        "year": 2020,  # from `date = {2020-05-14}`: biblatex has no year field
        "url": "https://arxiv.org/abs/2005.06789",
        "categories": ("storm surge", "data assimilation"),
        "sources": ("jabref.bib",),
        "doi": None,
        "arxiv_id": "2005.06789",
        "citekey": "Rivera2020",
    }
    assert problems(result) == [
        "jabref.bib:40: citation key Lindqvist2024 used twice (first at line 6)",
        "jabref.bib:48: cannot parse entry Brandt2021: Unexpected block start: `@Article`. "
        "Was still looking for field-value closing `,` or `}`",
    ]


def test_string_macros_resolve_in_joins_and_stay_in_the_entry_text(tmp_path):
    path = tmp_path / "macros.bib"
    path.write_text(
        '@string{ acl = "Association for Computational Linguistics" }\n'
        "@STRING{pre = {Proceedings of the }}\n"
        "@string{both = pre # acl}\n"
        "@inproceedings{k1,\n"
        '  title = "Tides " # {of } # acl,\n'
        "  abstract = both # { Workshop, 2021.},\n"
        "  year = 2021,\n"
        "  author = {{Barnes, Noble and Co} and Smith, Jr., John},\n"
        "  keywords = {C\\# code; {C++} tools},\n"
        "}\n",
        encoding="utf-8",
    )
    paper, = read_papers([path]).papers
    assert paper.title == "Tides of Association for Computational Linguistics"
    assert paper.abstract == ("Proceedings of the Association for Computational Linguistics "
                              "Workshop, 2021.")
    assert paper.year == 2021
    assert paper.authors == ("Barnes Noble and Co", "John Smith Jr.")  # no comma: kept whole
    assert paper.categories == ("C# code", "C++ tools")
    assert paper.bibtex == "\n".join(path.read_text(encoding="utf-8").splitlines()[3:10])


# --------------------------------------------------------------------------- Google Scholar


def test_google_scholar_bib_arxiv_id_from_journal_and_no_abstract():
    result = read("scholar.bib")
    haddad, lichen = result.papers
    assert problems(result) == ["scholar.bib:1: missing abstract (entry guo2024efficient)"]
    assert (haddad.paper_id, haddad.arxiv_id, haddad.citekey) == (
        "arxiv:2310.01234", "2310.01234", "haddad2023decoding")  # "arXiv preprint arXiv:..."
    assert haddad.title == "Decoding the honeybee waggle dance with 3d pose estimation"
    assert haddad.authors == ("Rania Haddad", "Bence Kovács", "Siobhán O'Neill")
    assert fields(lichen) == {
        "paper_id": lichen.paper_id,
        "title": "Lichen growth rates as a clock for rockfall dating",
        "abstract": "Lichens grow on fresh rock surfaces at rates that depend on climate. We "
        "calibrate the growth of Rhizocarpon geographicum on 64 dated rockfall deposits in the "
        "Norwegian fjords and use it to date 300 undated deposits to within 15 years, revealing "
        "two clusters of rockfall activity after the wet winters of 1990 and 2015.",
        "authors": ("Yui Nakamura", "Anders Berg"),
        "year": 2021,
        "url": None,
        "categories": (),
        "sources": ("scholar.bib",),
        "doi": None,
        "arxiv_id": None,
        "citekey": "nakamura2021lichen",
    }


# --------------------------------------------------------------------------- RIS


def test_zotero_ris_every_field():
    result = read("zotero.ris")
    muller, permafrost, snow = result.papers
    assert fields(muller) == {
        **MULLER,
        "abstract": "Harmonic analysis predicts tides well in the open ocean but fails in "
        "estuaries, where river discharge and shallow water distort the signal. We train a "
        "Fourier neural operator on 14 years of records from 212 coastal gauges and forecast "
        "water levels 72 hours ahead in O(n log n) time.",
        "sources": ("zotero.ris",),
        "citekey": None,
    }
    assert fields(permafrost) == {
        "paper_id": "arxiv:2311.04567",
        "title": "Permafrost Thaw Slumps Mapped from Sentinel-2 with Weak Labels",
        "abstract": "Retrogressive thaw slumps grow fast as permafrost thaws, but maps of them are "
        "sparse. We train a segmentation model on Sentinel-2 images with weak labels drawn from "
        "elevation changes and map 4,800 slumps across the Yamal and Gydan peninsulas. The maps "
        "find 37% more slumps than manual inventories and show their area doubling between "
        "2017 and 2023.",
        "authors": ("Daria Ivanova", "Joon Kim"),
        "year": 2023,
        "url": "http://arxiv.org/abs/2311.04567",
        "categories": ("Computer Science - Computer Vision and Pattern Recognition",
                       "Electrical Engineering and Systems Science - Image and Video Processing"),
        "sources": ("zotero.ris",),
        "doi": None,
        "arxiv_id": "2311.04567",
        "citekey": None,
    }
    assert fields(snow) == {
        "paper_id": "doi:10.5194/tc-15-3291-2021",
        "title": "Snow Depth on Sea Ice from Ice-Tethered Buoys and Passive Microwave Data",
        "abstract": "Snow on sea ice insulates it and controls its growth, but snow depth is "
        "poorly known. We combine 60 ice-tethered buoys with passive microwave brightness "
        "temperatures and retrieve snow depth across the Arctic with an error of 6 cm, half that "
        "of the current operational product.",
        "authors": ("Erik Lindqvist", "Daria Ivanova"),
        "year": 2021,
        "url": "https://doi.org/10.5194/tc-15-3291-2021",
        "categories": ("sea ice", "snow"),
        "sources": ("zotero.ris",),
        "doi": "10.5194/tc-15-3291-2021",
        "arxiv_id": None,
        "citekey": None,
    }
    assert all(p.bibtex is None for p in result.papers)
    assert problems(result) == [
        'zotero.ris:40: missing abstract (AB) in "Acoustic Deterrents for Harbour Porpoises '
        'near Tidal Turbines"']


def test_mendeley_ris_bom_crlf_and_id():
    result = read("mendeley.ris")
    assert result.problems == []
    whale, permafrost = result.papers
    assert fields(whale) == {
        "paper_id": "doi:10.1121/10.0005001",
        "title": "Fin Whale Calls in Ocean Bottom Seismometer Records",
        "abstract": "Ocean bottom seismometers record the calls of fin whales as a by-product. We "
        "detect 1.2 million fin whale calls in five years of seismometer data off Portugal and "
        "show that their seasonal presence shifted three weeks earlier between 2015 and 2020.",
        "authors": ("Lucía Rivera", "Pedro Santos"),
        "year": 2021,
        "url": "https://doi.org/10.1121/10.0005001",
        "categories": (),
        "sources": ("mendeley.ris",),
        "doi": "10.1121/10.0005001",
        "arxiv_id": None,
        "citekey": "Rivera2021",
    }
    assert (permafrost.paper_id, permafrost.citekey, permafrost.url) == (
        "arxiv:2311.04567", "Ivanova2023", "https://arxiv.org/abs/2311.04567v2")


# --------------------------------------------------------------------------- the whole library


def test_one_paper_per_doi_or_arxiv_id_across_the_exports():
    result = read_papers([LIBRARY])
    assert result.records == 16 and len(result.papers) == 13
    by_id = {p.paper_id: p for p in result.papers}
    # JabRef and Google Scholar, by the arXiv id (eprint / "arXiv preprint arXiv:2310.01234"):
    assert by_id["arxiv:2310.01234"].sources == ("jabref.bib", "scholar.bib")
    assert by_id["arxiv:2310.01234"].citekey == "Haddad2023"  # the first reading's
    # Zotero's .bib and .ris, by the DOI; Mendeley's and Zotero's RIS, by the arXiv id:
    assert by_id["doi:10.1016/j.ocemod.2022.102011"].sources == ("zotero.bib", "zotero.ris")
    assert by_id["arxiv:2311.04567"].sources == ("mendeley.ris", "zotero.ris")
    assert problems(result) == [
        "jabref.bib:40: citation key Lindqvist2024 used twice (first at line 6)",
        "jabref.bib:48: cannot parse entry Brandt2021: Unexpected block start: `@Article`. "
        "Was still looking for field-value closing `,` or `}`",
        "scholar.bib:1: missing abstract (entry guo2024efficient)",
        "zotero.bib:48: missing abstract (entry sato_seismic_2021)",
        'zotero.ris:40: missing abstract (AB) in "Acoustic Deterrents for Harbour Porpoises '
        'near Tidal Turbines"',
    ]
    stream = PaperStream([LIBRARY])
    assert (stream.records, stream.papers) == (16, 13)
    key = lambda p: p.paper_id  # noqa: E731
    assert sorted(stream, key=key) == sorted(result.papers, key=key)


def test_strict_names_the_first_problems_and_reads_nothing():
    with pytest.raises(CorpusError) as info:
        PaperStream([LIBRARY / "zotero.bib", LIBRARY / "zotero.ris"], strict=True)
    assert str(info.value) == (
        f"2 malformed records (first: {LIBRARY / 'zotero.bib'}:48: missing abstract (entry "
        f"sato_seismic_2021); {LIBRARY / 'zotero.ris'}:40: missing abstract (AB) in \"Acoustic "
        "Deterrents for Harbour Porpoises near Tidal Turbines\"); fix them or drop --strict")


# --------------------------------------------------------------------------- LaTeX


@pytest.mark.parametrize("tex, text", [
    (r'M{\"u}ller, Andr\'e, \c{c}a, {\o}ystein, Erd\H{o}s, \v{S}koda, \l{}\'od\'z',
     "Müller, André, ça, øystein, Erdős, Škoda, łódź"),
    (r"{BERT}: Pre-training of {{Deep}} Bidirectional {Transformers}",
     "BERT: Pre-training of Deep Bidirectional Transformers"),
    (r"pages 1--10 and an em---dash", "pages 1–10 and an em—dash"),
    (r"$\mathcal{O}(n \log n)$ attention, $\alpha$-divergence, $\mathbf{W}x$, $x \leq 5$",
     "O(n log n) attention, α-divergence, Wx, x ≤ 5"),
    (r"\emph{in situ}, \textbf{bold} \textsc{Caps}, ``quoted'', 50\% \& 3\_000 \#1",
     "in situ, bold Caps, “quoted”, 50% & 3_000 #1"),
    ("as shown by~\\citet{x}, improves 12% over \\cite{y} (R&D)",
     "as shown by , improves 12% over (R&D)"),
    ("plain text\n\t  wrapped  by the exporter", "plain text wrapped by the exporter"),
])
def test_latex_text(tex, text):
    assert latex_text(tex) == text


def test_latex_text_deep_nesting_is_linear_and_plain():
    deep = "{" * 20000 + "Deep" + "}" * 20000 + r" \emph{title}"
    started = time.perf_counter()
    assert latex_text(deep) == "Deep title"
    assert time.perf_counter() - started < 2


# --------------------------------------------------------------------------- bad files


def test_bad_bytes_skip_only_their_entry(tmp_path):
    path = tmp_path / "mixed.bib"
    path.write_bytes(
        b"@article{good1, title={First}, abstract={One.}}\n"
        b"@article{latin,\n  title={Caf\xe9 Study},\n  abstract={Two.}\n}\n"
        b"@article{good2, title={Third}, abstract={Three.}}\n")
    result = read_papers([path])
    assert [p.citekey for p in result.papers] == ["good1", "good2"]
    assert problems(result) == ["mixed.bib:3: not valid UTF-8 (byte 13 of the line)"]


def test_jabref_encoding_header_is_honoured(tmp_path):
    path = tmp_path / "latin1.bib"
    path.write_bytes("% Encoding: ISO-8859-1\n\n@article{k, title={Caf\xe9 M\xfcller},"
                     " abstract={\xc9t\xe9.}}\n".encode("latin-1"))
    paper, = read_papers([path]).papers
    assert (paper.title, paper.abstract) == ("Café Müller", "Été.")


def test_ris_unclosed_records_and_stray_text(tmp_path):
    path = tmp_path / "cut.ris"
    path.write_text(
        "Exported by some tool\n"
        "TY  - JOUR\nTI  - Never closed\nAB  - Lost.\n"
        "TY  - JOUR\nTI  - Closed\nAB  - Kept.\nER  - \n"
        "TY  - JOUR\nTI  - Cut short\nAB  - Text\n", encoding="utf-8")
    result = read_papers([path])
    assert [p.title for p in result.papers] == ["Closed"]
    assert problems(result) == [
        "cut.ris:1: text outside a record (no TY line before it)",
        "cut.ris:2: record has no ER line before the next TY",
        "cut.ris:9: record has no ER line (file cut short?)",
    ]


def test_bib_title_given_twice_and_empty_fields(tmp_path):
    path = tmp_path / "twice.bib"
    path.write_text(
        "@article{a, title={One}, Title={Two}, abstract={x}}\n"
        "@article{b, title={  }, abstract={x}}\n"
        "@article{c, title={Fine}, abstract={{}}}\n"
        "@comment{not a paper}\n@preamble{\"\\newcommand{\\x}{y}\"}\n"
        "@article{d, title={Good}, abstract={Kept.}}\n", encoding="utf-8")
    result = read_papers([path])
    assert [(p.citekey, p.title, p.abstract) for p in result.papers] == [("d", "Good", "Kept.")]
    assert problems(result) == [
        "twice.bib:1: field title given twice (entry a)",
        "twice.bib:2: empty title (entry b)",
        "twice.bib:3: empty abstract (entry c)",
    ]


def test_gzipped_bib_and_empty_files(tmp_path):
    gz = tmp_path / "lib.bib.gz"
    gz.write_bytes(gzip.compress((LIBRARY / "scholar.bib").read_bytes()))
    (tmp_path / "empty.bib").write_text("% nothing exported yet\n", encoding="utf-8")
    (tmp_path / "empty.ris").write_text("", encoding="utf-8")
    result = read_papers([tmp_path])
    assert [p.citekey for p in result.papers] == ["haddad2023decoding", "nakamura2021lichen"]
    assert [p.sources for p in result.papers] == [("lib.bib.gz",), ("lib.bib.gz",)]
    assert problems(result) == ["lib.bib.gz:1: missing abstract (entry guo2024efficient)"]
