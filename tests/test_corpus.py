"""corpus: the bundled page dumps, every input format, malformed records, merging and ids."""

from __future__ import annotations

import csv
import gzip
import json
import re
import zlib
from pathlib import Path

import pytest

from assistant.corpus import (
    PaperStream,
    ReadResult,
    bundled_paths,
    normalize_title,
    paper_id_for,
    read_papers,
)
from assistant.errors import CorpusError, PapersError

BUNDLED_NAMES = ["000_f4c403a82406db2a.txt", "003_958efcd1eedfa573.txt", "004_6aae409bf07b199f.txt"]
ABSTRACT = (
    "We study how large language models learn from data, and we propose a simple method that "
    "improves their accuracy on many benchmarks while using less compute than prior work. "
    "Experiments on ten datasets show consistent gains over strong baselines."
)  # > 200 chars: abstract-like in a page dump


def abstract(n: int) -> str:
    return f"Abstract number {n}. " + ABSTRACT


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def by_title(result: ReadResult) -> dict:
    return {p.title: p for p in result.papers}


# --------------------------------------------------------------------------- bundled corpus


@pytest.fixture(scope="module")
def bundled() -> ReadResult:
    return read_papers(bundled_paths())


def test_bundled_paths_are_the_three_page_dumps():
    paths = bundled_paths()
    assert [p.name for p in paths] == BUNDLED_NAMES
    assert all(p.is_file() for p in paths)


def test_bundled_counts(bundled):
    assert bundled.problems == []
    assert bundled.records == 457
    assert len(bundled.papers) == 399
    assert len({p.paper_id for p in bundled.papers}) == 399


def test_bundled_known_paper(bundled):
    paper = by_title(bundled)["Efficient Continual Pre-training by Mitigating the Stability Gap"]
    assert paper.paper_id == paper_id_for(paper.title)
    assert re.fullmatch(r"t:[0-9a-f]{16}", paper.paper_id)
    assert len(paper.abstract) > 200
    assert set(paper.sources) <= set(BUNDLED_NAMES)


def test_bundled_duplicates_keep_every_source_in_file_order(bundled):
    papers = by_title(bundled)
    vpt = next(p for t, p in papers.items() if t.startswith("Video PreTraining (VPT)"))
    assert vpt.sources == tuple(BUNDLED_NAMES)
    grok = next(p for t, p in papers.items() if t.startswith("Where to find Grokking"))
    assert grok.sources == ("000_f4c403a82406db2a.txt", "004_6aae409bf07b199f.txt")
    assert sum(len(p.sources) > 1 for p in bundled.papers) == 56


def test_bundled_subscribe_is_stripped_and_no_boilerplate_is_a_paper(bundled):
    titles = by_title(bundled)
    cot = "How to think step-by-step: A mechanistic understanding of chain-of-thought reasoning"
    assert cot in titles
    assert titles[cot].sources[0] == "000_f4c403a82406db2a.txt"
    assert not any(t.startswith("Subscribe") for t in titles)
    boilerplate = {"new", "Subscribe", "Mar 14", "byAK and the research community"}
    assert not boilerplate & set(titles)
    assert not any("trending papers" in t for t in titles)
    assert all(len(p.abstract) >= 200 for p in bundled.papers)


def test_bundled_reingest_is_idempotent(bundled):
    again = read_papers(bundled_paths())
    assert [p.paper_id for p in again.papers] == [p.paper_id for p in bundled.papers]
    assert again.papers == bundled.papers


# --------------------------------------------------------------------------- ids and titles


def test_normalize_title_ignores_case_punctuation_whitespace_accents():
    base = normalize_title("Efficient Continual Pre-training")
    assert normalize_title("  efficient   continual\npretraining!! ") == base
    assert normalize_title("EFFICIENT CONTINUAL PRE TRAINING") == base
    assert normalize_title("Café") == normalize_title("Cafe")
    assert normalize_title("A") != normalize_title("B")


def test_paper_id_for():
    assert paper_id_for("x", "2305.12345v2") == "arxiv:2305.12345"
    assert paper_id_for("x", "arXiv:2305.12345") == "arxiv:2305.12345"
    assert paper_id_for("x", "https://arxiv.org/abs/2305.12345v3") == "arxiv:2305.12345"
    assert paper_id_for("x", "hep-th/9901001v1") == "arxiv:hep-th/9901001"
    title_id = paper_id_for("Attention Is All You Need")
    assert re.fullmatch(r"t:[0-9a-f]{16}", title_id)
    assert paper_id_for("attention is all you need.") == title_id
    assert paper_id_for("Attention Is All You Need", None) == title_id
    assert paper_id_for("Another title") != title_id
    assert paper_id_for("???") != paper_id_for("!!!")  # no letters: keyed on the raw title


# --------------------------------------------------------------------------- page dumps


def test_page_dump_title_without_abstract_resynchronises(tmp_path):
    page = tmp_path / "page.txt"
    page.write_text(
        "\n".join(
            [
                "Get trending papers in your email inbox once a day!",  # 1
                "SubscribeFirst Paper",  # 2
                abstract(1),  # 3
                "",  # 4
                "Mar 14",  # 5
                "Orphan Title",  # 6  <- no abstract
                "Second Paper",  # 7
                abstract(2),  # 8
                "new",  # 9
                "Third Paper",  # 10
                abstract(3),  # 11
                "Dangling Title At End",  # 12 <- no abstract
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    result = read_papers([page])
    assert [p.title for p in result.papers] == ["First Paper", "Second Paper", "Third Paper"]
    assert result.papers[1].abstract == abstract(2)
    assert result.records == 3
    assert [str(p) for p in result.problems] == [
        f'{page}:6: title "Orphan Title" has no abstract',
        f'{page}:12: title "Dangling Title At End" has no abstract',
    ]
    assert all(p.sources == ("page.txt",) for p in result.papers)


def test_page_dump_abstract_without_title_and_bad_bytes(tmp_path):
    page = tmp_path / "page.txt"
    page.write_bytes(
        b"\n".join(
            [
                abstract(0).encode(),  # 1: abstract with no title
                b"Good Paper",  # 2
                abstract(1).encode(),  # 3
                b"Broken \xff\xfe Title",  # 4: not UTF-8, skipped
                b"Next Paper",  # 5
                abstract(2).encode(),  # 6
            ]
        )
    )
    result = read_papers([page])
    assert [p.title for p in result.papers] == ["Good Paper", "Next Paper"]
    lines = [(p.line, p.reason.split(" ")[0]) for p in result.problems]
    assert lines == [(1, "abstract"), (4, "not")]
    assert "UTF-8" in result.problems[1].reason


def test_page_dump_long_sentence_counts_as_abstract(tmp_path):
    short_abstract = " ".join(["word"] * 24) + "."  # < 200 chars but a sentence of many words
    page = tmp_path / "p.txt"
    page.write_text(f"A Title?\n{short_abstract}\n", encoding="utf-8")
    result = read_papers([page])
    assert [(p.title, p.abstract) for p in result.papers] == [("A Title?", short_abstract)]


# --------------------------------------------------------------------------- JSON Lines


def test_jsonl_malformed_records_are_reported_with_lines(tmp_path):
    path = tmp_path / "papers.jsonl"
    path.write_bytes(
        b"\n".join(
            [
                json.dumps({"title": "Good One", "abstract": "Fine."}).encode(),  # 1
                b'{"title": "Broken", "abstract": ',  # 2 bad JSON
                json.dumps({"title": "No Abstract", "abstract": "  "}).encode(),  # 3 empty
                json.dumps({"abstract": "no title here"}).encode(),  # 4 missing title
                b"[1, 2, 3]",  # 5 not an object
                b"",  # 6 blank: skipped silently
                b'{"title": "Caf\xe9", "abstract": "latin-1 bytes"}',  # 7 undecodable
                json.dumps({"title": 5, "abstract": "x"}).encode(),  # 8 title not a string
                json.dumps({"title": "Good Two", "abstract": "Also fine."}).encode(),  # 9
            ]
        )
        + b"\n"
    )
    result = read_papers([path])
    assert [p.title for p in result.papers] == ["Good One", "Good Two"]
    assert result.records == 2
    got = {p.line: p.reason for p in result.problems}
    assert sorted(got) == [2, 3, 4, 5, 7, 8]
    assert got[2].startswith("bad JSON")
    assert got[3] == "empty abstract"
    assert got[4] == "missing title"
    assert got[5].startswith("not a JSON object")
    assert "UTF-8" in got[7]
    assert got[8] == "title is not a string"
    assert str(result.problems[0]) == f"{path}:2: {got[2]}"


def test_jsonl_optional_fields(tmp_path):
    path = write_jsonl(
        tmp_path / "p.ndjson",
        [
            {
                "id": "2401.00001v3",
                "title": "  Spaced\n  Title ",
                "abstract": "An  abstract\nwith newlines.",
                "authors": "Ada Lovelace, Alan Turing and Grace Hopper",
                "categories": "cs.CL, cs.LG",
                "year": "2022",
            },
            {
                "title": "Listed",
                "abstract": "Text.",
                "authors": ["A. One", " B. Two "],
                "categories": ["cs.AI"],
                "year": 2020,
                "url": "https://example.org/p",
                "id": "local-7",
            },
        ],
    )
    first, second = read_papers([path]).papers
    assert first.paper_id == "arxiv:2401.00001"
    assert (first.title, first.abstract) == ("Spaced Title", "An abstract with newlines.")
    assert first.authors == ("Ada Lovelace", "Alan Turing", "Grace Hopper")
    assert first.categories == ("cs.CL", "cs.LG")
    assert first.year == 2022  # an explicit year beats the id's 2024
    assert first.url == "https://arxiv.org/abs/2401.00001"
    assert second.paper_id == paper_id_for("Listed")  # "local-7" is no arXiv id
    assert second.authors == ("A. One", "B. Two")
    assert (second.categories, second.year) == (("cs.AI",), 2020)
    assert second.url == "https://example.org/p"


def test_json_array_file_is_one_clear_problem(tmp_path):
    path = tmp_path / "papers.json"
    path.write_text(json.dumps([{"title": "t", "abstract": "a"}], indent=2), encoding="utf-8")
    result = read_papers([path])
    assert result.papers == []
    assert len(result.problems) == 1
    assert result.problems[0].line == 1 and "one JSON object a line" in result.problems[0].reason


# --------------------------------------------------------------------------- arXiv snapshot


def snapshot_record(**overrides) -> dict:
    record = {
        "id": "2305.12345",
        "submitter": "Someone",
        "authors": "Andr\\'e Martins, J. M\\\"uller and Z. Zhang",
        "title": "Learning \\emph{Sparse}\n  Transformers with $O(n\\log n)$ Attention",
        "comments": "10 pages",
        "categories": "cs.CL cs.LG",
        "abstract": "  We show that~\\textbf{sparse} attention is\n"
        "fast -- and \\textit{accurate}.\n"
        "  Caf\\'{e} results hold for $k=2$.\n",
        "versions": [{"version": "v1", "created": "Sun, 14 May 2023 10:00:00 GMT"}],
        "update_date": "2024-01-02",
    }
    record.update(overrides)
    return record


def test_arxiv_snapshot_cleanup_id_year(tmp_path):
    path = write_jsonl(
        tmp_path / "arxiv-metadata-oai-snapshot.json",
        [
            snapshot_record(),
            snapshot_record(id="2001.00002v2", title="Second", versions=[]),
            snapshot_record(
                id="hep-th/9901001",
                title="Old Style",
                versions=[{"version": "v1", "created": "Fri, 1 Jan 1999 00:00:00 GMT"}],
            ),
            snapshot_record(id="math/0101001", title="Only Update Date", versions=None),
        ],
    )
    result = read_papers([path])
    assert result.problems == []
    first, second, old, dated = result.papers
    assert first.paper_id == "arxiv:2305.12345"
    assert first.title == "Learning Sparse Transformers with O(n\\log n) Attention"
    assert first.abstract == (
        "We show that sparse attention is fast -- and accurate. Cafe results hold for k=2."
    )
    assert first.authors == ("Andre Martins", "J. Muller", "Z. Zhang")
    assert first.categories == ("cs.CL", "cs.LG")
    assert first.year == 2023
    assert first.url == "https://arxiv.org/abs/2305.12345"
    assert first.sources == ("arxiv-metadata-oai-snapshot.json",)
    assert (second.paper_id, second.year) == ("arxiv:2001.00002", 2020)
    assert (old.paper_id, old.year) == ("arxiv:hep-th/9901001", 1999)
    assert (dated.paper_id, dated.year) == ("arxiv:math/0101001", 2024)


def test_arxiv_snapshot_broken_records_name_file_and_line(tmp_path):
    """A cut line, a record without an abstract, a non-object: each reported, the rest read."""
    path = tmp_path / "arxiv-metadata-oai-snapshot.json"
    lines = [json.dumps(snapshot_record(id="2401.00001", title="Good One")),
             json.dumps(snapshot_record(id="2401.00002"))[:60],  # cut mid-record
             json.dumps(snapshot_record(id="2401.00003", abstract="")),
             "[1, 2]",
             json.dumps(snapshot_record(id="2401.00005", title="Good Five"))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = read_papers([path])
    assert [p.title for p in result.papers] == ["Good One", "Good Five"]
    assert [p.line for p in result.problems] == [2, 3, 4]
    for problem in result.problems:
        assert str(problem).startswith(f"{path}:{problem.line}: ") and "\n" not in str(problem)


# --------------------------------------------------------------------------- CSV


def test_csv_rows_quoted_newlines_and_bad_rows(tmp_path):
    path = tmp_path / "papers.csv"
    with path.open("w", newline="", encoding="utf-8-sig") as handle:  # BOM, as Excel writes
        writer = csv.writer(handle)
        writer.writerow(["Title", "abstract", "authors", "year", "categories"])  # 1
        writer.writerow(["First", "Line one\nline two", "A, B and C", "2021", "cs.CL cs.IR"])  # 2-3
        writer.writerow(["Too", "few"])  # 4
        writer.writerow(["", "no title", "", "", ""])  # 5
        writer.writerow(["Second", "Fine.", "", "", ""])  # 6
    result = read_papers([path])
    assert [p.title for p in result.papers] == ["First", "Second"]
    first = result.papers[0]
    assert first.abstract == "Line one line two"
    assert (first.authors, first.year) == (("A", "B", "C"), 2021)
    assert first.categories == ("cs.CL", "cs.IR")
    assert [(p.line, p.reason) for p in result.problems] == [
        (4, "2 columns, header has 5"),
        (5, "empty title"),
    ]


def test_csv_without_title_column(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("name,summary\nx,y\n", encoding="utf-8")
    result = read_papers([path])
    assert result.papers == []
    assert [str(p) for p in result.problems] == [
        f"{path}:1: CSV header needs title and abstract columns"
    ]


# --------------------------------------------------------------------------- strict mode


def test_strict_raises_one_line_listing_first_problems(tmp_path):
    path = tmp_path / "f.jsonl"
    lines = [json.dumps({"title": f"T{i}", "abstract": "a"}) for i in range(6)]
    lines[1] = "{oops"
    lines[3] = json.dumps({"title": "T3"})
    lines[4] = json.dumps({"title": "", "abstract": "a"})
    lines[5] = "not json"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    lenient = read_papers([path])
    assert len(lenient.papers) == 2 and len(lenient.problems) == 4

    with pytest.raises(CorpusError) as info:
        read_papers([path], strict=True)
    message = str(info.value)
    assert isinstance(info.value, PapersError)
    assert "\n" not in message
    assert message.startswith(f"4 malformed records (first: {path}:2: bad JSON")
    assert f"{path}:4: missing abstract" in message
    assert f"{path}:6:" not in message  # only the first three are quoted
    assert message.endswith("fix them or drop --strict")


def test_strict_passes_clean_input(tmp_path):
    path = write_jsonl(tmp_path / "ok.jsonl", [{"title": "T", "abstract": "A"}])
    assert len(read_papers([path], strict=True).papers) == 1


# --------------------------------------------------------------------------- merging and ids


def test_duplicates_merge_and_arxiv_id_wins_in_any_order(tmp_path):
    page = tmp_path / "a_page.txt"
    page.write_text(f"Efficient Continual Pre-training\n{abstract(1)}\n", encoding="utf-8")
    arxiv = write_jsonl(
        tmp_path / "b.jsonl",
        [
            {
                "id": "2406.14833v2",
                "title": "efficient continual pretraining.",
                "abstract": "Other text.",
                "categories": "cs.CL",
            },
            {"title": "EFFICIENT  continual pre-training", "abstract": "Third copy."},
        ],
    )
    forward = read_papers([page, arxiv])
    backward = read_papers([arxiv, page])
    assert forward.records == backward.records == 3
    assert len(forward.papers) == len(backward.papers) == 1
    merged = forward.papers[0]
    assert merged.paper_id == backward.papers[0].paper_id == "arxiv:2406.14833"
    assert merged.title == "Efficient Continual Pre-training"  # the first reading's text
    assert merged.abstract == abstract(1)
    assert merged.sources == ("a_page.txt", "b.jsonl")
    assert merged.categories == ("cs.CL",)
    assert merged.year == 2024
    assert backward.papers[0].sources == ("b.jsonl", "a_page.txt")


def test_same_input_twice_gives_same_ids(tmp_path):
    path = write_jsonl(
        tmp_path / "p.jsonl",
        [{"title": f"Paper {i}", "abstract": "A."} for i in range(5)]
        + [{"id": "2305.12345v1", "title": "x", "abstract": "y"}],
    )
    first = [p.paper_id for p in read_papers([path]).papers]
    second = [p.paper_id for p in read_papers([path]).papers]
    assert first == second
    assert len(set(first)) == 6
    assert first[-1] == "arxiv:2305.12345"


# --------------------------------------------------------------------------- gz, folders, errors


def test_gz_inputs(tmp_path):
    with gzip.open(tmp_path / "a.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write(json.dumps({"title": "From Jsonl", "abstract": "A."}) + "\n{bad\n")
    with gzip.open(tmp_path / "b.csv.gz", "wt", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([["title", "abstract"], ["From Csv", "B."]])
    with gzip.open(tmp_path / "c.txt.gz", "wt", encoding="utf-8") as handle:
        handle.write(f"Subscribe\nFrom Page\n{abstract(1)}\n")
    result = read_papers([tmp_path / "a.jsonl.gz", tmp_path / "b.csv.gz", tmp_path / "c.txt.gz"])
    assert [p.title for p in result.papers] == ["From Jsonl", "From Csv", "From Page"]
    assert [p.sources for p in result.papers] == [("a.jsonl.gz",), ("b.csv.gz",), ("c.txt.gz",)]
    assert [str(p) for p in result.problems][0].startswith(f"{tmp_path / 'a.jsonl.gz'}:2: bad JSON")


def test_truncated_gz_keeps_good_records(tmp_path):
    rows = [json.dumps({"title": f"T{i}", "abstract": "a" * 50}) for i in range(200)]
    data = gzip.compress("\n".join(rows).encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    result = read_papers([path])
    assert 0 < len(result.papers) < 200
    assert len(result.problems) == 1 and "cannot read further" in result.problems[0].reason
    readable = zlib.decompressobj(wbits=31).decompress(data[: len(data) // 2])
    assert len(result.papers) == readable.count(b"\n")  # every whole line before the cut
    assert result.problems[0].line == len(result.papers) + 1  # names the line it stopped at


def test_directory_expands_to_supported_files_sorted(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_jsonl(folder / "b.jsonl", [{"title": "B", "abstract": "b"}, {"title": "bad"}])
    (folder / "a.txt").write_text(f"A Paper\n{abstract(1)}\n", encoding="utf-8")
    (folder / "notes.md").write_text("ignored", encoding="utf-8")
    (folder / ".hidden.jsonl").write_text("{broken", encoding="utf-8")
    result = read_papers(folder)  # a single path is accepted as well as a list
    assert [p.title for p in result.papers] == ["A Paper", "B"]
    assert [str(p) for p in result.problems] == [f"{folder / 'b.jsonl'}:2: missing abstract"]


def test_unknown_extension_missing_path_and_empty_folder(tmp_path):
    pdf = tmp_path / "paper.pdf"
    pdf.write_bytes(b"%PDF-1.4")
    good = write_jsonl(tmp_path / "ok.jsonl", [{"title": "T", "abstract": "A"}])
    for bad, words in [
        (pdf, "unsupported format"),
        (tmp_path / "nope.jsonl", "no such file or folder"),
        (tmp_path / "x.tar.gz", "no such file"),
    ]:
        with pytest.raises(CorpusError) as info:
            read_papers([good, bad])
        message = str(info.value)
        assert "\n" not in message and words in message and str(bad) in message
        assert ".txt" in message and ".jsonl" in message and ".csv" in message and ".gz" in message
    (tmp_path / "x.tar.gz").write_bytes(b"")
    with pytest.raises(CorpusError, match="unsupported format"):
        read_papers([tmp_path / "x.tar.gz"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CorpusError, match="holds no paper files"):
        read_papers([empty])


# --------------------------------------------------------------------------- distinct ids, streaming


def test_distinct_ids_stay_distinct_papers_when_titles_are_equal(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"id": "2401.00001", "title": "Attention Is All You Need", "abstract": "First."},
        {"id": "2401.00002v2", "title": "Attention is all you need.", "abstract": "Second."},
        {"id": "local-1", "title": "Attention Is All You Need", "abstract": "Third."},
        {"id": "local-2", "title": "Attention Is All You Need", "abstract": "Fourth."},
        {"id": "2401.00001v3", "title": "Attention Is All You Need", "abstract": "First again."},
        {"title": "Attention Is All You Need", "abstract": "No id: joins the first."},
    ])
    result = read_papers([path])
    assert result.records == 6
    assert [p.abstract for p in result.papers] == ["First.", "Second.", "Third.", "Fourth."]
    ids = [p.paper_id for p in result.papers]
    assert ids[:2] == ["arxiv:2401.00001", "arxiv:2401.00002"]
    assert len(set(ids)) == 4 and all(re.fullmatch(r"t:[0-9a-f]{16}", i) for i in ids[2:])
    assert ids == [p.paper_id for p in read_papers([path]).papers]  # stable across reads


def test_page_dump_duplicates_still_merge_and_bundled_ids_are_unchanged(bundled):
    assert len(bundled.papers) == 399
    for paper in bundled.papers:  # no bundled record has an id: every id is its title's hash
        assert paper.paper_id == paper_id_for(paper.title)


def test_paper_stream_gives_the_papers_read_papers_gives(tmp_path, bundled):
    stream = PaperStream(bundled_paths())
    assert (stream.records, stream.papers) == (457, 399)
    key = lambda p: p.paper_id  # noqa: E731
    assert sorted(stream, key=key) == sorted(bundled.papers, key=key)

    page = tmp_path / "a_page.txt"
    page.write_text(f"Efficient Continual Pre-training\n{abstract(1)}\n", encoding="utf-8")
    mixed = write_jsonl(tmp_path / "b.jsonl", [
        {"id": "2406.14833v2", "title": "efficient continual pretraining.", "abstract": "Other."},
        {"id": "2406.99999", "title": "Efficient continual pretraining", "abstract": "Distinct."},
        {"title": "A lone paper", "abstract": "Alone."},
    ])
    stream = PaperStream([page, mixed])
    assert stream.papers == 3
    assert sorted(stream, key=key) == sorted(read_papers([page, mixed]).papers, key=key)


def test_paper_stream_yields_before_reading_everything_and_keeps_few_problems(tmp_path):
    rows = [{"id": f"2401.{i:05d}", "title": f"Paper {i}", "abstract": "A."} for i in range(500)]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    with path.open("a") as fh:
        fh.write("{bad json\n" * 300)
    stream = PaperStream([path])
    assert stream.problems.count == 300 and len(stream.problems.shown) == 100
    papers = iter(stream)
    first = next(papers)
    assert first.paper_id == "arxiv:2401.00000"
    # The generator has read one record so far: nothing of the rest is held.
    frame = papers.gi_frame
    assert frame is not None and not frame.f_locals["waiting"].papers
    assert sum(1 for _ in papers) == 499

    with pytest.raises(CorpusError, match="300 malformed records"):
        PaperStream([path], strict=True)
