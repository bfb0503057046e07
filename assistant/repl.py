"""`papers chat`: the terminal conversation (prompt-toolkit input, rich output).

Presentation only: the conversation state lives in `assistant.chat.Conversation`, answering in
`assistant.answer.Assistant`.

Interactive (stdin is a terminal): persistent history (Up/Down, Ctrl-R), slash-command
completion, multi-line paste (bracketed paste; Alt-Enter adds a line, Enter sends), the papers
being read shown as soon as retrieval is done, the answer streamed as Markdown (a live preview,
then the final text with its citations checked), a Sources panel and a one-line status.
Ctrl-C cancels the answer being written (or clears the line), Ctrl-D or /quit leaves.

Piped (stdin not a terminal): one question (or slash command) a line, plain answers followed by
the sources they cite, so it can be scripted: `printf 'q1\\nq2\\n' | papers chat`. Lines are
one conversation, as in the terminal (`/reset` between unrelated questions saves a rewrite).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.live import Live
from rich.markdown import Markdown
from rich.markup import escape
from rich.panel import Panel
from rich.segment import Segment
from rich.spinner import Spinner
from rich.style import Style
from rich.table import Table
from rich.text import Text

from . import citations
from .chat import (
    COMMANDS,
    ChatInputError,
    Command,
    Conversation,
    describe_filters,
    parse_command,
    source_label,
    suggest_command,
    trim_question,
)
from .config import Settings
from .errors import PapersError
from .text import MARKER, clean
from .types import Answer, Paper, Retrieved, Source

HISTORY_FILE = "chat_history"
_MARKER = MARKER
_MARKER_STYLE = Style(color="cyan", bold=True)
_SNIPPET_CHARS = 280


# --- the assistant, created lazily so a missing store does not end the session -------------------


class _AssistantHandle:
    """Stands in for an Assistant that could not be created yet (missing store, ...).

    Every use retries the creation, so `papers ingest` run in another terminal fixes the
    session without restarting it.
    """

    def __init__(self, factory: Callable[[], Any]):
        self._factory = factory
        self._real: Any = None

    def load(self) -> Any:
        if self._real is None:
            self._real = self._factory()
        return self._real

    @property
    def loaded(self) -> bool:
        return self._real is not None

    def stream_events(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        return self.load().stream_events(*args, **kwargs)

    def paper(self, paper_id: str) -> Paper | None:
        return self.load().paper(paper_id)

    def stats(self) -> dict:
        return self.load().stats()

    def search(self, *args: Any, **kwargs: Any) -> Any:
        return self.load().search(*args, **kwargs)

    def close(self) -> None:
        if self._real is not None and hasattr(self._real, "close"):
            self._real.close()


def _default_assistant(settings: Settings) -> Any:
    from .answer import Assistant  # imported late: it loads the store and the embedding model

    return Assistant(settings)


# --- rendering helpers ---------------------------------------------------------------------------


class _Cited:
    """A renderable (Markdown) with its `[n]` citation markers highlighted."""

    def __init__(self, renderable: Any):
        self.renderable = renderable

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = console.render_lines(self.renderable, options, pad=False)
        while lines and not "".join(seg.text for seg in lines[0]).strip():
            lines.pop(0)  # rich starts a list or a code block with a blank line
        while lines and not "".join(seg.text for seg in lines[-1]).strip():
            lines.pop()
        for line in lines:
            for segment in line:
                text, style, control = segment
                if control or "[" not in text:
                    yield segment
                    continue
                position = 0
                for match in _MARKER.finditer(text):
                    if match.start() > position:
                        yield Segment(text[position:match.start()], style)
                    yield Segment(match.group(), (style or Style()) + _MARKER_STYLE)
                    position = match.end()
                if position < len(text):
                    yield Segment(text[position:], style)
            yield Segment.line()


def _markdown(text: str) -> _Cited:
    return _Cited(Markdown(clean(text), hyperlinks=False))


class TailView:
    """The last lines of a renderable that fit in `height`: the live preview of an answer.

    Keeping the live region shorter than the terminal lets rich erase it cleanly when the final
    answer is printed in its place, however long the answer grows.
    """

    def __init__(self, renderable: Any, height: int):
        self.renderable = renderable
        self.height = max(3, height)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = console.render_lines(self.renderable, options, pad=False)
        if len(lines) > self.height:
            hidden = len(lines) - self.height + 1
            lines = lines[hidden:]
            yield Text(f"… {hidden} line{'s' if hidden != 1 else ''} above", style="dim")
        for line in lines:
            yield from line
            yield Segment.line()


class _Waiting:
    """A spinner with what is awaited and for how long: the model can take a while on a CPU."""

    def __init__(self, label: str):
        self.label = label
        self.started = time.monotonic()
        self.spinner = Spinner("dots", style="cyan")

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        elapsed = time.monotonic() - self.started
        hint = f" {elapsed:.0f} s · Ctrl-C cancels" if elapsed >= 3 else ""
        self.spinner.update(text=Text.assemble((f" {self.label}", "dim"), (hint, "dim")))
        yield self.spinner


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def status_line(answer: Answer, settings: Settings) -> str:
    """`model · retrieval 84 ms · first token 1.9 s · total 15.2 s · 812 in / 96 out tokens`."""
    parts = [answer.model or settings.model_name, f"retrieval {_ms(answer.timings.retrieval_s)}"]
    if answer.timings.first_token_s is not None:
        parts.append(f"first token {_ms(answer.timings.first_token_s)}")
    if answer.timings.total_s:
        parts.append(f"total {_ms(answer.timings.total_s)}")
    usage = answer.usage
    if usage.prompt_tokens or usage.completion_tokens:
        parts.append(f"{usage.prompt_tokens:,} in / {usage.completion_tokens:,} out tokens")
    else:
        parts.append("no model call")
    if answer.dropped_citations:
        n = answer.dropped_citations
        parts.append(f"{n} invalid citation{'s' if n != 1 else ''} removed")
    return " · ".join(parts)


def _snippet(text: str, limit: int = _SNIPPET_CHARS) -> str:
    text = " ".join(clean(text).split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + " …"


@contextlib.contextmanager
def _no_echo(stream: TextIO) -> Iterator[None]:
    """Keys typed while an answer streams are not echoed over it (Ctrl-C still interrupts)."""
    try:
        import termios

        fd = stream.fileno()
        old = termios.tcgetattr(fd)
    except (ImportError, OSError, ValueError, AttributeError):
        yield
        return
    new = list(old)
    new[3] &= ~termios.ECHO
    try:
        termios.tcsetattr(fd, termios.TCSANOW, new)
    except OSError:
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            termios.tcsetattr(fd, termios.TCSANOW, old)


# --- the session ---------------------------------------------------------------------------------


class ChatUI:
    """Renders one chat session on a rich Console; `handle(line)` returns False to quit."""

    def __init__(self, conversation: Conversation, settings: Settings, console: Console, *,
                 interactive: bool, err_console: Console | None = None,
                 input_stream: TextIO | None = None):
        self.conv = conversation
        self.settings = settings
        self.console = console
        self.err = err_console or console
        self.interactive = interactive
        self.input_stream = input_stream
        self.failures = 0
        self._sources: tuple[Source, ...] = ()  # of the answer being streamed

    # -- dispatch --

    def handle(self, line: str) -> bool:
        if not line.strip():
            return True
        command = parse_command(line)
        if command is None:
            self.ask(line)
            return True
        return self.command(command)

    def command(self, command: Command) -> bool:
        handler = getattr(self, "cmd_" + command.name[1:], None) if command.name in COMMANDS \
            else None
        if handler is None:
            hint = suggest_command(command.name)
            did_you_mean = f" Did you mean [bold]{hint}[/]?" if hint else ""
            self.console.print(f"[yellow]Unknown command {escape(command.name)}.[/]"
                               f"{did_you_mean} Type [bold]/help[/] for the list.")
            return True
        try:
            return handler(command.arg) is not False
        except ChatInputError as err:
            self.console.print(f"[yellow]{escape(str(err))}[/]")
        except PapersError as err:
            self.error(str(err))
        return True

    def error(self, message: str, *, failed: bool = True) -> None:
        self.failures += failed
        self.err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
        if self.interactive:
            self.err.line()

    # -- commands --

    def cmd_help(self, arg: str) -> None:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for name, (args, text) in COMMANDS.items():
            short = len(args) < 12
            table.add_row(Text(f"{name} {args}".strip() if short else name),
                          Text(text if short else f"{text}, as in {name} year>=2022 "
                               "category=cs.CL, year=2021-2023, source=FILE, clear"))
        keys = ("Enter sends · Alt-Enter new line · ↑/↓ history · Ctrl-R search history · "
                "Ctrl-C cancels an answer · Ctrl-D quits")
        self.console.print(Panel(Group(
            Text("Ask about the papers in the collection; answers cite them as [n]. "
                 "Follow-up questions use the conversation so far."),
            Text(""), table, Text(""), Text(keys, style="dim")),
            title="papers chat", title_align="left", border_style="cyan", expand=False))
        self.console.line()

    def cmd_quit(self, arg: str) -> bool:
        return False

    def cmd_reset(self, arg: str) -> None:
        self.conv.reset()
        self.console.print("[dim]Conversation cleared: the next question starts fresh.[/]")

    def cmd_k(self, arg: str) -> None:
        if not arg:
            current = self.conv.k or self.settings.k
            self.console.print(f"k = {current} [dim](papers retrieved per question)[/]")
            return
        self.conv.set_k(arg)
        self.console.print(f"[dim]k set to[/] {self.conv.k}")

    def cmd_model(self, arg: str) -> None:
        if not arg:
            name = self.conv.model or self.settings.model_name
            note = "" if self.conv.model else " (default)"
            if name == "default":  # an endpoint without PAPERS_LLM_MODEL
                name, note = "the server's default", ""
            self.console.print(f"model = {escape(name)}[dim]{note}[/]")
            return
        self.conv.set_model(arg)
        self.console.print(f"[dim]model set to[/] {escape(self.conv.model or '')} "
                           "[dim](used from the next question)[/]")

    def cmd_filter(self, arg: str) -> None:
        if arg:
            self.conv.set_filters(arg)
            prefix = "filters cleared" if self.conv.filters.is_empty() else "filters set:"
            rest = "" if self.conv.filters.is_empty() else describe_filters(self.conv.filters)
            self.console.print(f"[dim]{prefix}[/] {escape(rest)}".rstrip())
            return
        self.console.print(f"filters: {escape(describe_filters(self.conv.filters))} [dim]"
                           "(/filter year>=2022 category=cs.CL source=FILE, /filter clear)[/]")

    def cmd_sources(self, arg: str) -> None:
        sources = self.conv.last_sources
        if not sources:
            self.console.print("[yellow]No sources yet: ask a question first.[/]")
            return
        cited = self._cited_numbers()
        table = Table.grid(padding=(0, 1))
        table.add_column(no_wrap=True, justify="right")
        table.add_column()
        for index, source in enumerate(sources):
            head = Text(source_label(source), style="bold")
            head.append(f"  score {source.score:.3f}", style="dim")
            if cited and source.n not in cited:
                head.append("  not cited", style="dim italic")
            if index:
                table.add_row("", "")
            table.add_row(Text(f"[{source.n}]", style=_MARKER_STYLE), head)
            table.add_row("", Text(_snippet(source.text), style="dim"))
        self.console.print(table)
        self.console.print("[dim]/open N shows the full abstract of source N.[/]")
        self.console.line()

    def cmd_open(self, arg: str) -> None:
        if not arg:
            raise ChatInputError("which source? as in /open 1")
        source, paper = self.conv.open_source(arg)
        self.console.print(_paper_panel(source, paper))
        self.console.line()

    def cmd_save(self, arg: str) -> None:
        if not self.conv.exchanges:
            self.console.print("[yellow]Nothing to save yet: ask a question first.[/]")
            return
        name = arg.strip().strip("'\"") or datetime.now().strftime("papers-chat-%Y%m%d-%H%M%S.md")
        path = Path(name).expanduser()
        if path.is_dir():
            path = path / datetime.now().strftime("papers-chat-%Y%m%d-%H%M%S.md")
        try:
            path.write_text(self.conv.transcript_markdown(), encoding="utf-8")
        except OSError as err:
            raise ChatInputError(f"cannot write {path}: {err.strerror or err}") from None
        n = len(self.conv.exchanges)
        plural = "s" if n != 1 else ""
        self.console.print(f"[dim]Saved {n} answer{plural} to[/] {escape(str(path))}")

    def _cited_numbers(self) -> set[int]:
        answer = self.conv.last_answer
        if answer is None or tuple(answer.sources) != tuple(self.conv.last_sources):
            return set()
        return {c.n for c in answer.citations}

    # -- answering --

    def ask(self, line: str) -> None:
        question, trimmed = trim_question(line)
        if trimmed:
            self.console.print(f"[yellow]Your question was trimmed to {len(question):,} "
                               f"characters (it had {len(line.strip()):,}).[/]")
        if self.interactive:
            self._ask_live(question)
        else:
            self._ask_plain(question)

    def _ask_live(self, question: str) -> None:
        """Papers being read as soon as retrieval is done, a live preview of the answer as the
        model writes it, then the final answer (citations checked and attributed) in its place."""
        console = self.console
        follow_up = bool(self.conv.history)
        events = self.conv.stream_events(question)
        streamed = ""
        answer: Answer | None = None
        self._sources = ()
        echo = _no_echo(self.input_stream) if self.input_stream else contextlib.nullcontext()
        waiting = ("reading the follow-up in context…" if follow_up
                   else "searching the collection…")
        live = Live(_Waiting(waiting), console=console,
                    refresh_per_second=10, transient=True, vertical_overflow="crop")
        try:
            with echo, live:
                for event in events:
                    if isinstance(event, Retrieved):
                        self._sources = tuple(event.sources)
                        console.print(_reading(event))
                        if event.sources:
                            n = len(event.sources)
                            live.update(_Waiting(f"reading {n} paper{'s' if n != 1 else ''}…"))
                    elif isinstance(event, str):
                        streamed += event
                        height = console.size.height - 2
                        live.update(TailView(_markdown(self._clean(streamed)), height))
                    elif isinstance(event, Answer):
                        answer = event
        except KeyboardInterrupt:
            events.close()
            self._print_partial(streamed)
            console.print("[yellow](answer cancelled)[/]")
            console.line()
            return
        except PapersError as err:
            events.close()
            self._print_partial(streamed)
            self.error(str(err))
            return
        except Exception as err:  # a chat session outlives any one answer
            events.close()
            self._print_partial(streamed)
            self.error(f"unexpected {type(err).__name__}: {err}")
            return
        if answer is None:
            self._print_partial(streamed)
            self.error("the assistant stopped without finishing the answer")
            return
        console.print(_markdown(answer.text.strip() or "(empty answer)"))
        self._after_answer(answer)

    def _print_partial(self, text: str) -> None:
        if text.strip():
            self.console.print(_markdown(self._clean(text.strip())))

    def _clean(self, text: str) -> str:
        """Citation markers as the final answer will have them: `[Source 2]` -> `[2]`, markers
        naming no source dropped (assistant.citations), so the stream matches the Sources panel."""
        if not self._sources:
            return text
        cleaned = citations.parse(text, self._sources).text
        return cleaned + text[len(text.rstrip()):]  # keep trailing whitespace (mid-stream)

    def _after_answer(self, answer: Answer) -> None:
        console = self.console
        if answer.abstained:
            hints = ["rephrase the question"]
            if not self.conv.filters.is_empty():
                hints.insert(0, "widen the filters (/filter clear)")
            hints.append("raise /k")
            console.print(f"[dim]Tip: {', '.join(hints)}.[/]")
        elif answer.sources:
            console.line()
            console.print(_sources_panel(answer))
        console.print(Text(status_line(answer, self.settings), style="dim"))
        console.line()

    def _ask_plain(self, question: str) -> None:
        """The final answer (citations checked), then the sources it cites: plain text."""
        out = self.console.file
        events = self.conv.stream_events(question)
        answer: Answer | None = None
        try:
            for event in events:
                if isinstance(event, Answer):
                    answer = event
        except PapersError as err:
            events.close()
            self.error(str(err))
            return
        finally:
            events.close()
        if answer is None:
            self.error("the assistant stopped without finishing the answer")
            return
        out.write(clean(answer.text.strip()) + "\n")
        if answer.sources and not answer.abstained:
            cited = {c.n for c in answer.citations}
            shown = [s for s in answer.sources if not cited or s.n in cited]
            out.write("\nSources:\n")
            for source in shown:
                out.write(f"[{source.n}] {source_label(source)}\n")
        out.write("\n")
        out.flush()


def _reading(event: Retrieved) -> Any:
    if not event.sources:
        return Text.assemble(("No paper in the collection matches closely enough", "yellow"),
                             (f"  ({_ms(event.retrieval_s)})", "dim"))
    lines = [Text.assemble(("Reading ", "dim"),
                           (f"{len(event.sources)} paper{'s' if len(event.sources) != 1 else ''}",
                            "bold"), (f" · {_ms(event.retrieval_s)}", "dim"))]
    for source in event.sources:
        line = Text("  ")
        line.append(f"[{source.n}] ", style=_MARKER_STYLE)
        line.append(source_label(source), style="dim")
        line.no_wrap = True
        line.overflow = "ellipsis"
        lines.append(line)
    lines.append(Text(""))
    return Group(*lines)


def _sources_panel(answer: Answer) -> Panel:
    cited = {c.n for c in answer.citations}
    table = Table.grid(padding=(0, 1))
    table.add_column(no_wrap=True, justify="right")
    table.add_column()
    for source in answer.sources:
        dim = bool(cited) and source.n not in cited
        table.add_row(Text(f"[{source.n}]", style="dim" if dim else _MARKER_STYLE),
                      Text(source_label(source), style="dim" if dim else ""))
    title = "Sources"
    if cited and len(cited) < len(answer.sources):
        title += " [dim]· dimmed: read, not cited[/]"
    return Panel(table, title=title, title_align="left", border_style="dim", expand=False,
                 padding=(0, 1))


def _paper_panel(source: Source, paper: Paper | None) -> Panel:
    body: list[Any] = []
    meta = []
    if paper is not None:
        if paper.authors:
            authors = ", ".join(paper.authors[:6]) + (" et al." if len(paper.authors) > 6 else "")
            meta.append(authors)
        if paper.year:
            meta.append(str(paper.year))
        if paper.categories:
            meta.append(" ".join(paper.categories))
    elif source.year:
        meta.append(str(source.year))
    if meta:
        body += [Text(clean(" · ".join(meta)), style="dim"), Text("")]
    body.append(Text(clean(paper.abstract if paper is not None else source.text)))
    footer = []
    if paper is not None and paper.url:
        footer.append(paper.url)
    if paper is not None and paper.sources:
        footer.append("from " + ", ".join(paper.sources))
    if paper is None:
        footer.append("(the store no longer has this paper; showing the retrieved text)")
    if footer:
        body += [Text(""), Text(clean(" · ".join(footer)), style="dim")]
    title = Text.assemble((f"[{source.n}] ", _MARKER_STYLE),
                          (clean(paper.title if paper is not None else source.title), "bold"))
    return Panel(Group(*body), title=title, title_align="left", border_style="cyan")


# --- input ---------------------------------------------------------------------------------------


def _history(settings: Settings):
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    path = Path(settings.cache_dir) / HISTORY_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
    except OSError:
        return InMemoryHistory()
    return FileHistory(str(path))


def _prompt_session(settings: Settings, conv: Conversation, pt_input: Any, pt_output: Any):
    from prompt_toolkit import PromptSession
    from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
    from prompt_toolkit.completion import Completer, Completion
    from prompt_toolkit.formatted_text import HTML
    from prompt_toolkit.key_binding import KeyBindings

    class SlashCompleter(Completer):
        def get_completions(self, document, complete_event):
            text = document.text_before_cursor
            if not text.startswith("/") or " " in text:
                return
            for name, (args, help_text) in COMMANDS.items():
                if name.startswith(text.lower()):
                    yield Completion(name, start_position=-len(text), display_meta=help_text)

    bindings = KeyBindings()

    @bindings.add("escape", "enter")
    def _newline(event):  # Alt-Enter (Esc, Enter): a new line instead of sending
        event.current_buffer.insert_text("\n")

    def rprompt():
        parts = []
        if conv.k:
            parts.append(f"k={conv.k}")
        if conv.model:
            parts.append(conv.model)
        if not conv.filters.is_empty():
            parts.append(describe_filters(conv.filters))
        return HTML("<style fg='ansibrightblack'>{}</style>").format(" · ".join(parts)) \
            if parts else ""

    return PromptSession(
        history=_history(settings),
        auto_suggest=AutoSuggestFromHistory(),
        completer=SlashCompleter(),
        complete_while_typing=True,
        key_bindings=bindings,
        multiline=False,
        prompt_continuation=lambda width, line_number, soft_wrap: "… ".rjust(width),
        rprompt=rprompt,
        input=pt_input,
        output=pt_output,
    )


def _warm_up(assistant: Any) -> dict:
    """Open the store and load the retriever before the first question, so its papers show
    well under a second after it is asked. Returns the collection's stats (may be empty)."""
    stats = assistant.stats() if hasattr(assistant, "stats") else {}
    if hasattr(assistant, "search"):
        assistant.search("warm up", k=1)
    return stats if isinstance(stats, dict) else {}


def _banner(ui: ChatUI, stats: dict) -> None:
    console = ui.console
    details = [f"model {ui.conv.model or ui.settings.model_name}",
               f"k {ui.conv.k or ui.settings.k}"]
    papers = stats.get("papers")
    if isinstance(papers, int):
        details.insert(0, f"{papers:,} papers")
    console.print(Text.assemble(("papers chat", "bold cyan"), ("  " + " · ".join(details), "dim")))
    console.print("[dim]Ask about the collection; follow-ups keep the context. "
                  "/help for commands, Ctrl-D to quit.[/]")
    console.line()


# --- entry points --------------------------------------------------------------------------------


def run_chat(settings: Settings, *, assistant: Any = None, input: TextIO | None = None,
             output: TextIO | None = None, k: int | None = None, model: str | None = None,
             error_output: TextIO | None = None) -> int:
    """Run a chat session until /quit, Ctrl-D or the end of piped input.

    Returns the exit status: 0, or 1 when piped input had a question that failed.
    """
    input = input if input is not None else sys.stdin
    output = output if output is not None else sys.stdout
    interactive = _isatty(input)

    handle: _AssistantHandle | None = None
    if assistant is None:
        handle = _AssistantHandle(lambda: _default_assistant(settings))
        assistant = handle
    conv = Conversation(assistant, k=k, model=model)

    if interactive:
        console = Console(file=output, highlight=False, soft_wrap=False)
        err_console = console
    else:
        console = Console(file=output, highlight=False, color_system=None, force_terminal=False,
                          width=100, emoji=False)
        err_console = Console(file=error_output or sys.stderr, highlight=False,
                              color_system=None, force_terminal=False, emoji=False)
    ui = ChatUI(conv, settings, console, interactive=interactive, err_console=err_console,
                input_stream=input if interactive else None)

    startup_error = None
    stats: dict = {}
    try:
        if interactive:
            with console.status("[dim]loading the collection…[/]", spinner="dots"):
                stats = _warm_up(assistant)
        else:
            stats = _warm_up(assistant)
    except PapersError as err:
        startup_error = str(err)  # the session stays; every question tries again
    except KeyboardInterrupt:
        return 130
    try:
        if interactive:
            _banner(ui, stats)
            if startup_error:
                ui.error(startup_error, failed=False)
            _interactive_loop(ui, settings, conv, input, output)
            return 0
        if startup_error:
            ui.error(startup_error, failed=False)  # counted when a question actually fails
        return _piped_loop(ui, input)
    finally:
        if handle is not None:
            with contextlib.suppress(Exception):
                handle.close()


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _interactive_loop(ui: ChatUI, settings: Settings, conv: Conversation, input: TextIO,
                      output: TextIO) -> None:
    from prompt_toolkit.formatted_text import HTML
    from prompt_toolkit.input import create_input
    from prompt_toolkit.output import create_output

    pt_input = None if input is sys.stdin else create_input(stdin=input)
    pt_output = None if output is sys.stdout else create_output(stdout=output)
    session = _prompt_session(settings, conv, pt_input, pt_output)
    message = HTML("<ansicyan><b>❯</b></ansicyan> ")
    while True:
        try:
            line = session.prompt(message)
        except KeyboardInterrupt:  # Ctrl-C at the prompt clears the line
            continue
        except EOFError:  # Ctrl-D
            break
        try:
            if not ui.handle(line):
                break
        except KeyboardInterrupt:  # Ctrl-C outside an answer (e.g. while saving)
            ui.console.print("[yellow](cancelled)[/]")
    ui.console.print("[dim]Bye.[/]")


def _piped_loop(ui: ChatUI, lines: Iterable[str]) -> int:
    try:
        for line in lines:
            if not ui.handle(line.rstrip("\n")):
                break
    except KeyboardInterrupt:
        return 130
    return 1 if ui.failures > 0 else 0


def chat_command(
    ctx: typer.Context,
    k: Annotated[int | None, typer.Option("-k", "--k", min=1, max=100,
                                          help="Papers to retrieve per question.")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m",
                                              help="Model name sent to the endpoint.")] = None,
) -> None:
    """Chat with the paper collection in the terminal (reads one question a line when piped)."""
    settings = ctx.obj if isinstance(ctx.obj, Settings) else Settings()
    code = run_chat(settings, k=k, model=model)
    raise typer.Exit(code)


def main(argv: list[str] | None = None) -> int:
    """`python -m assistant.repl [-k N] [--model NAME]` (the CLI's `papers chat` is the same)."""
    import argparse

    parser = argparse.ArgumentParser(prog="papers chat", description=__doc__.splitlines()[0])
    parser.add_argument("-k", "--k", type=int, default=None)
    parser.add_argument("-m", "--model", default=None)
    args = parser.parse_args(argv)
    return run_chat(Settings(), k=args.k, model=args.model)


if __name__ == "__main__":
    raise SystemExit(main())
