"""The `papers` command line: presentation only. Errors become one line and an exit code here."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .config import Settings
from .errors import PapersError, user_message
from .text import StreamCleaner, clean, json_line
from .types import Filters

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Grounded question answering over research-paper abstracts.")
llm_app = typer.Typer(no_args_is_help=True, help="The language model.")
app.add_typer(llm_app, name="llm")
err = Console(stderr=True, soft_wrap=True)  # soft_wrap: an error stays one line
out = Console(soft_wrap=True)

EXIT_SKIPPED = 3  # ingest finished but skipped malformed records
AskFormat = Literal["text", "markdown", "json"]
SearchFormat = Literal["text", "json", "bibtex"]


def _version(value: bool) -> None:
    if value:
        from . import __version__

        print(f"papers {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    ctx.obj = Settings()


# Every command that reads or writes papers takes these two: which library, or which folder.
LibraryOption = Annotated[str | None, typer.Option(
    "--library", help="Library to use (default: papers); `papers libraries` lists them.")]
StoreOption = Annotated[Path | None, typer.Option(
    "--store", help="Store folder to use instead of a library (as PAPERS_STORE_DIR).")]


def _settings(ctx: typer.Context, library: str | None = None, store: Path | None = None) -> Settings:
    """The command's settings; says which library is used when it is a ./store found here."""
    from .library import location_note, with_library

    settings = with_library(ctx.obj if isinstance(ctx.obj, Settings) else Settings(), library, store)
    note = location_note(settings)
    if note:
        err.print(note, highlight=False, markup=False)
    return settings


def _filters(year_min, year_max, category, source) -> Filters | None:
    f = Filters(year_min=year_min, year_max=year_max, category=category, source=source)
    return None if f.is_empty() else f


@app.command()
def ingest(
    ctx: typer.Context,
    paths: Annotated[list[Path] | None, typer.Argument(
        help="Files or folders (.bib, .ris, .txt page dumps, .jsonl/.json, .csv, arXiv snapshot, "
             ".gz). None: the bundled collection.")] = None,
    prune: Annotated[bool, typer.Option(help="Remove papers no longer in the sources.")] = False,
    strict: Annotated[bool, typer.Option(help="Abort before writing if any record is malformed.")] = False,
    rebuild: Annotated[bool, typer.Option(help="Drop the store first (after a settings change).")] = False,
    library: LibraryOption = None,
    store: StoreOption = None,
) -> None:
    """Read papers, embed what changed, and store them (resumable, idempotent)."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    from .ingest import ingest as run_ingest

    settings = _settings(ctx, library, store)
    columns = [TextColumn("embedding"), BarColumn(), TaskProgressColumn(),
               TextColumn("{task.completed}/{task.total} papers"),
               TextColumn("{task.fields[rate]:.1f} papers/s"), TimeRemainingColumn()]
    with Progress(*columns, console=err, transient=True) as bar:
        task = None
        started = time.perf_counter()

        def progress(done: int, total: int) -> None:
            nonlocal task
            if task is None:
                task = bar.add_task("ingest", total=total, rate=0.0)
            rate = done / max(time.perf_counter() - started, 1e-6)
            bar.update(task, completed=done, rate=rate)
            if not err.is_terminal:  # a log line per step when not on a terminal
                err.print(f"stored {done}/{total} papers")

        report = run_ingest(settings, paths or None, prune=prune, strict=strict,
                            rebuild=rebuild, progress=progress, notice=_notice)
    for problem in report.problems[:20]:
        err.print(f"[yellow]skipped[/] {escape(clean(str(problem)))}", highlight=False)
    if report.reported > 20:
        err.print(f"... and {report.reported - 20} more problems")
    if report.repaired:
        _notice(f"repaired: {report.repaired} chunks had lost their vector and were written again")
    if report.prune_aborted:
        _notice(f"prune aborted, nothing deleted: {report.prune_aborted}; run `papers ingest "
                "--prune` again once every source is complete")
    pruned = (f", {report.pruned} pruned" if not report.prune_aborted else ", prune aborted") if prune else ""
    out.print(
        f"papers: {report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
        f"{report.skipped} skipped{pruned}; chunks written: {report.chunks_written}; "
        f"store: {report.papers} papers, {report.chunks} chunks; {report.seconds:.1f} s", highlight=False)
    if report.skipped or report.reported or report.prune_aborted:
        raise typer.Exit(EXIT_SKIPPED)


def _notice(line: str) -> None:
    """A line about the run itself (waiting for the writer lock, a repair), printed as is."""
    err.print(clean(line), highlight=False, markup=False)


def _text_arg(value: str, what: str) -> str:
    """A query or question from the command line, as text: bytes that are not UTF-8 (Python
    keeps them as lone surrogates) become U+FFFD; nothing but spaces is a usage error."""
    from .errors import UsageError
    from .text import valid_text

    value = valid_text(value)
    if not value.strip():
        raise UsageError(f"the {what} is empty: give some words to look for")
    return value


@app.command()
def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", min=1, max=100, help="Papers to return.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (as --format json).")] = False,
    fmt: Annotated[SearchFormat, typer.Option(
        "--format", help="text (a table), json, or bibtex (the papers' entries).")] = "text",
    year_min: Annotated[int | None, typer.Option(help="Only papers from this year on.")] = None,
    year_max: Annotated[int | None, typer.Option(help="Only papers up to this year.")] = None,
    category: Annotated[str | None, typer.Option(help="Only this category, e.g. cs.CL.")] = None,
    source: Annotated[str | None, typer.Option(help="Only papers read from this file.")] = None,
    library: LibraryOption = None,
    store: StoreOption = None,
) -> None:
    """Hybrid (dense + BM25) search: one row per paper."""
    from .answer import Assistant

    query = _text_arg(query, "query")
    settings = _settings(ctx, library, store)
    _ensure_store(settings)
    assistant = Assistant(settings)
    hits = assistant.search(query, k=k, filters=_filters(year_min, year_max, category, source))
    if fmt == "bibtex":
        from .export import bibtex

        papers = [p for p in (assistant.paper(h.paper_id) for h in hits) if p is not None]
        print(clean(bibtex(papers)), end="")
        return
    if as_json or fmt == "json":
        results = [{"rank": h.rank, "title": h.title, "paper_id": h.paper_id,
                    "score": round(h.score, 4), "snippet": h.snippet} for h in hits]
        print(json_line({"query": query, "results": results}))
        return
    if not hits:
        out.print("No papers match.")
        return
    table = Table(show_lines=False)
    for col, kw in (("#", {"justify": "right"}), ("title", {"ratio": 2}), ("score", {"justify": "right"}),
                    ("snippet", {"ratio": 3})):
        table.add_column(col, **kw)
    for h in hits:
        table.add_row(str(h.rank), escape(clean(h.title)), f"{h.score:.3f}", escape(clean(h.snippet)))
    out.print(table)


@app.command()
def stats(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    library: LibraryOption = None,
    store: StoreOption = None,
) -> None:
    """Where the library is, its papers and chunks per source file, embedding model, last ingest."""
    from . import library as libraries

    info = libraries.stats(_settings(ctx, library, store))
    if as_json:
        print(json_line(info))
        return
    if not info["exists"]:
        out.print(f"No library at {info['store']} yet: build it with {info['build']}.",
                  highlight=False, markup=False)
        return
    shown = {k: v for k, v in info.items() if k not in ("exists", "origin", "sources")}
    for key, value in shown.items():
        if key == "library" and value is None:
            continue
        out.print(f"{key.replace('_', ' ')}: {value}", highlight=False, markup=False)
        if key == "chunks":
            _print_sources(info["sources"])


def _print_sources(sources: dict) -> None:
    out.print("sources:", highlight=False)
    for name, counts in sources.items():
        out.print(f"  {clean(name)}: {counts['papers']} papers, {counts['chunks']} chunks",
                  highlight=False, markup=False)


@app.command("libraries")
def libraries_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """The libraries side by side in the per-user folder, with their papers and chunks."""
    from . import library as libraries

    settings = _settings(ctx)
    infos = libraries.libraries(settings)
    folder = libraries.libraries_dir(settings)
    if as_json:
        print(json_line({"folder": str(folder), "libraries": [i.to_dict() for i in infos]}))
        return
    if not infos:
        out.print(f"No libraries in {folder} yet: `papers ingest` builds one.", highlight=False,
                  markup=False)
        return
    out.print(f"Libraries in {folder} (* in use):", highlight=False, markup=False)
    for info in infos:
        name = info.name or str(info.store)
        counts = (f"{info.papers} papers, {info.chunks} chunks" if info.problem is None
                  else info.problem)
        out.print(f"{'*' if info.used else ' '} {clean(name)}: {clean(counts)}", highlight=False,
                  markup=False)


@app.command()
def check(
    ctx: typer.Context,
    repair: Annotated[bool, typer.Option(
        "--repair", help="Write lost vectors again and rebuild the BM25 index (takes the writer lock).")] = False,
    library: LibraryOption = None,
    store: StoreOption = None,
) -> None:
    """Verify that every chunk has its vector and the BM25 index matches the store."""
    from . import integrity

    settings = _settings(ctx, library, store)
    report = integrity.repair(settings, notice=_notice) if repair else integrity.check(settings)
    integrity.raise_if_damaged(report)
    out.print(report.line(), highlight=False, markup=False)


@app.command()
def ask(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="The question.")],
    history: Annotated[list[str] | None, typer.Option(
        "--history", help="An earlier user turn (repeat, oldest first).")] = None,
    k: Annotated[int | None, typer.Option("-k", min=1, max=100, help="Papers to retrieve.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model name for the endpoint.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (as --format json).")] = False,
    fmt: Annotated[AskFormat, typer.Option(
        "--format", help="text, markdown (with a numbered reference list), or json.")] = "text",
    show_unsupported: Annotated[bool, typer.Option(
        "--show-unsupported", help="Also show the answer's sentences the check does not support, "
        "marked '(unverified)' (default: left out, and counted).")] = False,
    library: LibraryOption = None,
    store: StoreOption = None,
) -> None:
    """Answer a question from the collection: a direct answer, then each paper's evidence."""
    from .answer import Assistant
    from .chat_render import announce_queue, live_answer, markdown, status_line
    from .types import Answer

    question = _text_arg(question, "question")
    settings = _settings(ctx, library, store)
    _ensure_store(settings)
    options = {"k": k, "model": model, "show_unsupported": show_unsupported or None}
    with Assistant(settings) as assistant:
        events = announce_queue(assistant.stream_events(question, history or None, **options),
                                settings, lambda line: err.print(line, highlight=False,
                                                                 markup=False))
        if as_json or fmt != "text":
            answer = next(e for e in events if isinstance(e, Answer))
            print(json_line(answer.to_dict()) if as_json or fmt == "json"
                  else answer.to_markdown(), end="\n" if as_json or fmt == "json" else "")
            return
        if out.is_terminal:
            answer = live_answer(out, events)
            assert answer is not None
            out.print(markdown(answer.text))
            out.print(status_line(answer, settings), style="dim", highlight=False, markup=False)
            return
        shown = StreamCleaner()  # model output is untrusted; a sequence may span two deltas
        for event in events:
            if isinstance(event, str):
                out.print(shown.feed(event), end="", highlight=False, markup=False)
                out.file.flush()
        out.print(shown.finish(), highlight=False, markup=False)


@llm_app.command("serve")
def llm_serve(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    host: Annotated[str, typer.Option(
        help="Interface to listen on. Anything but loopback (127.0.0.1, localhost, ::1) "
        "is refused unless an API key is set.")] = "127.0.0.1",
    api_key: Annotated[str | None, typer.Option(
        "--api-key", help="Key clients must send (default: PAPERS_LLM_API_KEY); "
        "required for a non-loopback --host.")] = None,
) -> None:
    """Run the embedded model server in the foreground (reuse it: PAPERS_LLM_BASE_URL)."""
    from .local_server import serve_forever

    settings = _settings(ctx)
    serve_forever(settings, host=host, port=port, api_key=api_key or settings.llm_api_key)


@app.command()
def chat(
    ctx: typer.Context,
    k: Annotated[int | None, typer.Option("-k", min=1, max=100, help="Papers per question.")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model name for the endpoint.")] = None,
    show_unsupported: Annotated[bool, typer.Option(
        "--show-unsupported", help="Also show sentences the check does not support, marked "
        "'(unverified)' (/unverified shows them for one answer).")] = False,
    library: LibraryOption = None,
    store: StoreOption = None,
) -> None:
    """Chat with the collection in the terminal (reads one question a line when piped)."""
    from .repl import run_chat

    settings = _settings(ctx, library, store)
    if show_unsupported:
        settings = settings.model_copy(update={"show_unsupported": True})
    _ensure_store(settings)
    raise typer.Exit(run_chat(settings, k=k, model=model))


def _ensure_store(settings: Settings) -> None:
    """First use of search/ask/chat with no default library: build the bundled one, saying so
    (library.ensure_library, which `Assistant` calls too, silently)."""
    from .library import ensure_library

    ensure_library(settings, say=lambda line: err.print(line, highlight=False, markup=False))


def _register_optional_commands(argv: list[str]) -> None:
    """`papers eval` imports numpy, matplotlib and the scorers: register it only when it can run
    or be listed (0.15 s off every other command)."""
    if argv and argv[0] not in ("eval", "--help", "-h"):
        return
    from .evaluation.command import eval_command

    app.command("eval")(eval_command)


def _click_exceptions() -> tuple[type[Exception], ...]:
    """Usage errors: typer >= 0.29 raises those of its vendored click, older ones click's own."""
    import click

    kinds: list[type[Exception]] = [click.ClickException]
    try:
        from typer._click.exceptions import ClickException as TyperClickException

        kinds.append(TyperClickException)
    except ImportError:
        pass
    return tuple(kinds)


def main() -> None:
    """Entry point: run the app; a failure the user can act on -> one red line and an exit code.

    PapersError and the OSError/SQLite failures `errors.user_message` knows (read-only or full
    store, locked or damaged database) print one line; anything else is a bug and keeps its
    traceback.
    """
    _register_optional_commands(sys.argv[1:])
    try:
        code = app(standalone_mode=False)  # returns the exit code of typer.Exit / Ctrl-C
    except PapersError as exc:
        err.print(f"[red]Error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err.print("Interrupted.")
        sys.exit(130)
    except _click_exceptions() as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except Exception as exc:
        message = user_message(exc)
        if message is None:
            raise
        err.print(f"[red]Error:[/] {escape(message)}", highlight=False)
        sys.exit(1)
    if code == 130:
        err.print("Interrupted.")
    sys.exit(code if isinstance(code, int) else 0)
