"""`papers eval`: the eval suite from the command line (registered by assistant/cli.py).

    papers eval                 replay evals/cassettes offline, print metrics, check thresholds
    papers eval --json          the whole report as JSON on stdout
    papers eval --report DIR    also write DIR/README.md and one bar chart PNG per metric
    papers eval --record        ask the live model again and rewrite the recordings

Exit status: 0 when every metric meets `evals/thresholds.json`; 1 when one falls below, or a
question raised while recording (each named on stderr; with --record the recordings are written
all the same). thresholds.json is read before anything runs: a missing or malformed file, or one
naming a metric the report no longer has, stops `papers eval` at once (a PapersError: the CLI
prints its one line). So do stale recordings.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer

from assistant.config import Settings

from .report import summary_lines, write_report
from .suite import default_evals_dir, run_suite
from .thresholds import check_thresholds, load_thresholds


def eval_command(
    ctx: typer.Context,
    record: bool = typer.Option(
        False, "--record",
        help="Run against the live model and rewrite the recordings under evals/cassettes "
             "(the embedded model on 2 cores: ~1 min per question; set PAPERS_LLM_BASE_URL to "
             "use a running server)."),
    json_out: bool = typer.Option(False, "--json", help="Print the full report as JSON."),
    report: Path | None = typer.Option(
        None, "--report", metavar="DIR",
        help="Write a Markdown report with tables and one bar chart PNG per metric to DIR."),
    question: list[str] = typer.Option(
        [], "--question", "-q", metavar="ID",
        help="Only this question id (repeatable); with --record, re-records just these."),
    only_stale: bool = typer.Option(
        False, "--only-stale",
        help="With --record: re-record only the questions whose recordings are missing or "
             "made for other prompts, model or question (resumes an interrupted recording); "
             "questions whose requests a retrieval change altered are named by the replay, for -q."),
    save_embeddings: bool = typer.Option(
        False, "--save-embeddings",
        help="Rewrite evals/embeddings.npz with the vectors this run used (after changing "
             "the faithfulness scorer or the chunking; --record always does)."),
    evals_dir: Path | None = typer.Option(
        None, "--evals-dir", metavar="DIR", help="Folder with questions.jsonl, thresholds.json "
        "and cassettes/ (default: ./evals)."),
    no_check: bool = typer.Option(False, "--no-check", help="Do not fail on thresholds."),
) -> None:
    """Measure retrieval, citations, abstention and faithfulness on the eval questions."""
    folder = evals_dir or default_evals_dir()
    quiet = json_out

    started = time.perf_counter()

    def progress(done: int, total: int, qid: str) -> None:
        if record:  # minutes per question: one line each, readable in a log
            print(f"  {done}/{total} {qid} ({time.perf_counter() - started:.0f} s)",
                  file=sys.stderr, flush=True)
        elif not quiet and sys.stderr.isatty():
            print(f"\r  {done}/{total} {qid:<14}", end="" if done < total else "\r",
                  file=sys.stderr, flush=True)

    partial = bool(question) or only_stale
    check = not (no_check or partial)
    # Read before the run: a recording takes an hour; a bad thresholds file should not wait.
    thresholds = load_thresholds(folder) if check else {}

    settings = ctx.obj if isinstance(ctx.obj, Settings) else Settings()
    # A PapersError (stale recordings, no model...) goes up to the CLI: one line, its exit code.
    result = run_suite(settings, record=record, evals_dir=folder, only=question or None,
                       only_stale=only_stale, save_embeddings=save_embeddings, progress=progress)

    data = result.to_dict()
    if json_out:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        for line in summary_lines(data):
            typer.echo(line)
    if report is not None:
        md = write_report(data, report)
        typer.echo(f"report: {md}", err=True)
    if result.embedded_live and not (record or save_embeddings):
        typer.echo(f"note: {result.embedded_live} texts were not in {folder / 'embeddings.npz'} "
                   "and were embedded live (slower); `papers eval --save-embeddings` "
                   "refreshes the file", err=True)

    failures = check_thresholds(data, thresholds) if check else []
    for line in failures:
        typer.echo(f"threshold not met: {line}", err=True)
    for r in result.errors:
        typer.echo(f"error: {r.id}: {r.error}", err=True)
    if failures or result.errors:
        if record:
            typer.echo("the recordings were written; questions that raised stay stale "
                       "(`papers eval --record --only-stale` retries them)", err=True)
        raise typer.Exit(1)
