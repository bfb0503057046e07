"""Text is data: whatever a record or a query holds, it is stored or reported as `file:line:
reason`, never a traceback, in linear time (issue 17, findings 3-6).

Each test here failed before the fix it names: tiktoken's special-token refusal, a lone
surrogate reaching SHA-1 and Chroma, json's recursion and int-digit limits, the LaTeX cleanup
looping once per brace level, argv bytes reaching the tokenizer, an empty query ranking every
paper, UTF-16 / CR-only files read as garbage, a CSV header naming `title` twice.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from test_failures import cheap_embed, run
from test_store import papers, settings_for, summary, write_jsonl

from assistant.corpus import read_papers
from assistant.ingest import ingest
from assistant.store import Store

ROOT = Path(__file__).resolve().parent.parent
GOOD = "We measure how tokenizers split rare words, and what that costs a language model."


def hostile_lines() -> list[str]:
    """One JSONL file of records a hostile but realistic input holds (line numbers matter)."""
    deep_title = "{" * 16_000 + "Deep Braces" + "}" * 16_000  # 32 KB: took 17.8 s to clean
    return [
        json.dumps({"title": "Tokenizer special tokens", "abstract":
                    "Models end a document with <|endoftext|> and chat turns with <|im_start|>. "
                    + GOOD}),
        '{"title": "Broken \\ud800 surrogate", "abstract": "' + GOOD + '"}',
        "[" * 100_000,
        '{"title": "Huge year", "year": ' + "9" * 5_000 + ', "abstract": "' + GOOD + '"}',
        '{"title": ' + "7" * 5_000 + ', "abstract": "' + GOOD + '"}',
        json.dumps({"id": "2301.00001", "title": deep_title, "abstract": GOOD,
                    "update_date": "2023-01-02"}),
    ]


# --------------------------------------------------------------------------- through ingest


def test_hostile_records_are_stored_or_named_never_a_traceback(tmp_path):
    (tmp_path / "hostile.jsonl").write_text("\n".join(hostile_lines()) + "\n", encoding="utf-8")
    store_dir = tmp_path / "store"
    done = papers("ingest", "hostile.jsonl", store_dir=store_dir, cwd=tmp_path)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode == 3, done.stderr  # finished, with records skipped
    skipped = [line for line in done.stderr.splitlines() if line.startswith("skipped ")]
    assert skipped == ["skipped hostile.jsonl:3: JSON nested too deeply (over ~1,000 levels)",
                       "skipped hostile.jsonl:5: title is not a string"]
    got = summary(done.stdout)
    assert (got["added"], got["skipped"], got["papers"]) == (4, 2, 4)  # stored + reported = read

    store = Store.open(settings_for(store_dir))
    titles = {c.title for c in store.iter_chunks()}
    assert titles == {"Tokenizer special tokens", "Broken \ufffd surrogate", "Huge year", "Deep Braces"}
    found = papers("search", "<|endoftext|> special tokens", "--json", "-k", "1", store_dir=store_dir)
    assert json.loads(found.stdout)["results"][0]["title"] == "Tokenizer special tokens"

    strict = papers("ingest", "--strict", "hostile.jsonl", store_dir=tmp_path / "s2", cwd=tmp_path)
    assert strict.returncode == 1 and "Traceback" not in strict.stderr
    assert strict.stderr.strip().splitlines() == [
        "Error: 2 malformed records (first: hostile.jsonl:3: JSON nested too deeply (over ~1,000 "
        "levels); hostile.jsonl:5: title is not a string); fix them or drop --strict"]


def test_special_token_text_is_chunked_as_plain_text(tmp_path):
    """tiktoken refuses "<|endoftext|>" unless told it is text: ingest stopped at that record."""
    rows = [{"title": f"Paper {i}", "abstract": f"{GOOD} Token <|endoftext|> number {i}. " * 30}
            for i in range(3)]
    report = ingest(settings_for(tmp_path / "store"), [write_jsonl(tmp_path / "p.jsonl", rows)],
                    embed=cheap_embed)
    assert (report.added, report.skipped) == (3, 0) and report.chunks > 3


def test_lone_surrogate_becomes_a_replacement_character(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"title": "A \\udc80 title", "abstract": "' + GOOD + '", '
                    '"authors": ["B \\ud800"], "categories": "cs.CL \\udfff"}\n', encoding="utf-8")
    paper, = read_papers([path]).papers
    assert (paper.title, paper.authors) == ("A \ufffd title", ("B \ufffd",))
    report = ingest(settings_for(tmp_path / "store"), [path], embed=cheap_embed)
    assert report.added == 1
    assert Store.open(settings_for(tmp_path / "store")).paper(paper.paper_id).title == "A \ufffd title"


def test_deep_nesting_and_huge_numbers_are_reasons_not_crashes(tmp_path):
    path = tmp_path / "p.jsonl"
    lines = ['{"title": "T", "abstract": "A", "x": ' + "[" * 50_000 + "]" * 50_000 + "}",
             '{"title": "T2", "abstract": "A2", "n": -' + "1" * 10_000 + "}",
             '{"title": "T3", "abstract": "A3", "f": 1' + "0" * 400 + "e99999}",
             '{"title": "T4", "abstract": "A4", "year": ' + "2" * 4_400 + "}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = read_papers([path])
    assert [str(p) for p in result.problems] == [f"{path}:1: JSON nested too deeply (over ~1,000 levels)"]
    assert [(p.title, p.year) for p in result.papers] == [("T2", None), ("T3", None), ("T4", None)]


# --------------------------------------------------------------------------- linear time

_CPU_LIMIT_S = 30  # a hang guard, not a timing: the linear cleanup needs ~0.5 s (see below)


def test_pathological_latex_is_cleaned_in_linear_time(tmp_path):
    """64k nested braces: ~0.4 s now; the old loop (one regex pass a level) needed 17.8 s at 16k
    levels and grows with the square, ~5 min here. The child runs under a CPU-time limit, so a
    busy machine does not make it fail; benchmarks/hostile_bench.py prints the figures."""
    title = "{" * 64_000 + "\\emph{Deep} {T}itle" + "}" * 64_000
    path = write_jsonl(tmp_path / "arxiv.json", [
        {"id": "2301.00001", "title": title, "abstract": "a.b-" * 20_000 + "c", "update_date": "2023"},
        {"id": "2301.00002", "title": "x^{" * 30_000 + "2" + "}" * 30_000, "abstract": GOOD,
         "versions": []}])
    code = ("import sys; from assistant.corpus import read_papers; "
            "r = read_papers([sys.argv[1]]); print(repr([p.title[:40] for p in r.papers]), len(r.problems))")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (_CPU_LIMIT_S, _CPU_LIMIT_S))

    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                          cwd=ROOT, preexec_fn=limit, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:] or f"killed (code {done.returncode})"
    assert done.stdout.strip() == "['Deep Title', '" + "x^{" * 13 + "x'] 0"


def test_name_patterns_are_linear_on_dotted_runs():
    """A 40 KB abstract of "a.a.a..." made each name pattern scan to the run's end from every
    dot (quadratic: ~6 s at ingest for one paper). Bounded names: one pass."""
    from assistant.retrieval import defined_names

    code = ("from assistant.retrieval import defined_names, NameTable; from assistant.types import Chunk; "
            "t = 'a.' * 100000 + ' x-' * 50000; defined_names('T', t); "
            "NameTable().add('p', [Chunk('p#0', 'p', 'T', t, 0, 1)]); print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CPU, (_CPU_LIMIT_S,) * 2),
                          timeout=600)
    assert done.stdout.strip() == "ok", done.stderr[-2000:] or f"killed (code {done.returncode})"
    assert defined_names("MASTER: a title", "we propose MASTER (Multi Agent), a method") >= {"MASTER"}


# --------------------------------------------------------------------------- queries


def test_query_with_any_byte_searches_or_says_why(bundled_store):
    env_store = bundled_store.store_dir
    raw = [sys.executable, "-c", _guarded_cli(), "search", b"stability \xff\xfe gap \xc3", "--json", "-k", "3"]
    done = subprocess.run(raw, capture_output=True, env=_env(env_store), timeout=300)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    result = json.loads(done.stdout)
    assert result["query"] == "stability \ufffd\ufffd gap \ufffd" and len(result["results"]) == 3
    done = subprocess.run(raw[:4] + [b"\xed\xa0\x80 continual pre-training"], capture_output=True,
                          env=_env(env_store), timeout=300)  # CESU-style surrogate bytes
    assert done.returncode == 0 and b"Traceback" not in done.stderr


@pytest.mark.parametrize("command", [["search", ""], ["search", "  \t "], ["ask", ""], ["ask", " "]])
def test_empty_query_is_a_usage_error(bundled_store, command):
    done = papers(*command, store_dir=bundled_store.store_dir)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"Error: the {'query' if command[0] == 'search' else 'question'} is empty: give some words "
        "to look for"]


def test_empty_query_in_python_finds_nothing(bundled_store):
    from assistant.answer import Assistant

    assert Assistant(bundled_store).search("   ") == []


def _guarded_cli() -> str:
    from netguard import GUARDED_CLI

    return GUARDED_CLI


def _env(store_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERS_")}
    env.update(PAPERS_STORE_DIR=str(store_dir), PAPERS_CACHE_DIR=os.environ["PAPERS_CACHE_DIR"])
    return env


# --------------------------------------------------------------------------- encodings and headers


RECORDS = [{"title": f"Encoded paper {i}", "abstract": f"{GOOD} Number {i}."} for i in range(3)]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_files_with_a_byte_order_mark_are_read(tmp_path, encoding):
    text = "".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in RECORDS)
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = codecs.BOM_UTF16_BE + data  # the -be codec writes no mark
    (tmp_path / "p.jsonl").write_bytes(data)
    result = read_papers([tmp_path / "p.jsonl"])
    assert (result.problems, [p.title for p in result.papers]) == ([], [r["title"] for r in RECORDS])


def test_utf16_without_a_mark_is_one_problem_with_a_hint(tmp_path):
    text = "".join(json.dumps(r) + "\n" for r in RECORDS)
    (tmp_path / "p.jsonl").write_bytes(text.encode("utf-16-le"))
    result = read_papers([tmp_path / "p.jsonl"])
    assert result.papers == []
    assert [str(p) for p in result.problems] == [
        f"{tmp_path / 'p.jsonl'}:1: looks like UTF-16 without a byte-order mark: save it as UTF-8"]


def test_cr_only_line_ends_are_lines(tmp_path):
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\r" for r in RECORDS), encoding="utf-8")
    (tmp_path / "p.csv").write_text("title,abstract\r" + "".join(
        f'"{r["title"]} (csv)","{r["abstract"]}"\r' for r in RECORDS), encoding="utf-8")
    (tmp_path / "bad.jsonl").write_text(json.dumps(RECORDS[0]) + "\r{broken\r" + json.dumps(RECORDS[1]))
    result = read_papers([tmp_path / "p.jsonl", tmp_path / "p.csv", tmp_path / "bad.jsonl"])
    assert len(result.papers) == 6 and result.records == 8
    assert [(Path(p.path).name, p.line) for p in result.problems] == [("bad.jsonl", 2)]


def test_csv_naming_a_column_twice_is_refused(tmp_path):
    path = tmp_path / "p.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["title", "abstract", "notes", "title"])
        writer.writerow(["First title", GOOD, "n", "Second title"])
    result = read_papers([path])
    assert result.papers == []
    assert [str(p) for p in result.problems] == [
        f'{path}:1: CSV header names "title" in 2 columns (1, 4): keep one']


# --------------------------------------------------------------------------- the store's files


def test_emptied_database_is_damaged_and_looking_writes_nothing(tmp_path, capsys, monkeypatch):
    import sqlite3

    store_dir = tmp_path / "store"
    ingest(settings_for(store_dir), [write_jsonl(tmp_path / "p.jsonl", RECORDS)], embed=cheap_embed)
    db = store_dir / "chroma.sqlite3"
    for damage in ("zero-length", "no tables"):
        db.unlink()
        if damage == "zero-length":
            db.write_bytes(b"")
        else:
            sqlite3.connect(db).execute("CREATE TABLE unrelated (x)").connection.close()
        before = db.read_bytes()
        for args in (["stats"], ["search", "tokenizers"], ["check"]):
            code, _, err = run(capsys, monkeypatch, store_dir, *args)
            assert code == 1 and "Traceback" not in err, err
            assert err.strip().splitlines() == [
                f"Error: the store at {store_dir} is damaged: rebuild it with `papers ingest "
                "--rebuild` (or restore a backup)"]
            assert db.read_bytes() == before  # looking wrote nothing into it
        code, _, err = run(capsys, monkeypatch, store_dir, "ingest", str(tmp_path / "p.jsonl"))
        assert code == 1 and "is damaged" in err


def test_read_only_commands_create_no_file_and_change_none_of_ours(tmp_path, capsys, monkeypatch):
    """stats, search and check create nothing and change nothing of ours (BM25 index, writer
    lock); with no store they create no folder. Chroma's own client still records itself in its
    database and re-saves its vector index when it opens one (docs/reliability.md)."""
    store_dir = tmp_path / "store"
    ingest(settings_for(store_dir), [write_jsonl(tmp_path / "p.jsonl", RECORDS)], embed=cheap_embed)

    def files() -> dict[str, tuple[int, int]]:
        return {str(p.relative_to(tmp_path)): (p.stat().st_size, p.stat().st_mtime_ns)
                for p in tmp_path.rglob("*") if p.is_file()}

    def ours(snapshot: dict) -> dict:
        chroma = ("chroma.sqlite3", ".bin")
        return {k: v for k, v in snapshot.items() if not k.endswith(chroma)}

    before = files()
    for args in (["stats"], ["search", "tokenizers"], ["check"]):
        code, _, err = run(capsys, monkeypatch, store_dir, *args)
        assert code in (0, None), err
    after = files()
    assert sorted(after) == sorted(before) and ours(after) == ours(before)
    missing = tmp_path / "no-store"
    for args in (["stats"], ["search", "x"], ["check"]):
        code, out, err = run(capsys, monkeypatch, missing, *args)
        assert (code == 1 and "no paper store" in err) or (  # stats says so and exits 0
            args == ["stats"] and code in (0, None) and out.startswith(f"No library at {missing}")), err
    assert not missing.exists()
