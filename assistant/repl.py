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
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from . import citations
from .chat import (
    COMMANDS,
    ChatInputError,
    Command,
    Conversation,
    parse_command,
    suggest_command,
    trim_question,
)
from .chat_commands import Commands
from .chat_input import interactive_loop, isatty, no_echo, piped_loop
from .chat_render import (
    TailView,
    Waiting,
    announce_queue,
    markdown,
    reading,
    status_line,
)
from .answer_text import EVIDENCE_HEADER, evidence_text
from .config import Settings
from .errors import user_message
from .text import clean
from .types import Answer, Paper, Retrieved, Source

__all__ = ["ChatUI", "TailView", "run_chat", "status_line"]


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


# --- the session ---------------------------------------------------------------------------------


class ChatUI(Commands):
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
        except Exception as err:  # a failed command leaves the session running
            self.failed(err)
        return True

    def failed(self, err: Exception) -> None:
        """One line for any failure: the user's next step when known, else the bug's name."""
        message = user_message(err)
        self.error(message if message is not None else f"unexpected {type(err).__name__}: {err}")

    def error(self, message: str, *, failed: bool = True) -> None:
        self.failures += failed
        self.err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
        if self.interactive:
            self.err.line()

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

    def _events(self, question: str):
        """The conversation's events, saying when the question waits in a shared server's queue
        (on stderr when piped: stdout holds the answers)."""
        console = self.console if self.interactive else self.err
        say = lambda line: console.print(Text(line, style="yellow"), soft_wrap=True)  # noqa: E731
        return announce_queue(self.conv.stream_events(question), self.settings, say)

    def _ask_live(self, question: str) -> None:
        """The evidence as soon as it is decided, the direct answer above it as each checked
        sentence arrives, then the whole answer in their place."""
        console = self.console
        follow_up = bool(self.conv.history)
        events = self._events(question)
        streamed = ""
        answer: Answer | None = None
        self._sources = ()
        echo = no_echo(self.input_stream) if self.input_stream else contextlib.nullcontext()
        waiting = ("reading the follow-up in context…" if follow_up
                   else "searching the collection…")
        live = Live(Waiting(waiting), console=console,
                    refresh_per_second=10, transient=True, vertical_overflow="crop")
        evidence: Any = Text("")
        try:
            with echo, live:
                for event in events:
                    if isinstance(event, Retrieved):
                        self._sources = tuple(event.sources)
                        evidence = reading(event)
                        live.update(TailView(evidence, console.size.height - 2))
                    elif isinstance(event, str):
                        streamed += event
                        opening = streamed.split("\n\n" + EVIDENCE_HEADER)[0]
                        live.update(TailView(Group(markdown(self._clean(opening)), Text(""),
                                                   evidence), console.size.height - 2))
                    elif isinstance(event, Answer):
                        answer = event
        except KeyboardInterrupt:
            events.close()
            self._print_partial(streamed)
            console.print("[yellow](answer cancelled)[/]")
            console.line()
            return
        except Exception as err:  # a chat session outlives any one answer
            events.close()
            self._print_partial(streamed)
            self.failed(err)
            return
        if answer is None:
            self._print_partial(streamed)
            self.error("the assistant stopped without finishing the answer")
            return
        console.print(markdown(answer.text.strip() or "(empty answer)"))
        self._after_answer(answer)

    def _print_partial(self, text: str) -> None:
        if text.strip():
            self.console.print(markdown(self._clean(text.strip())))
        elif self._sources:  # cancelled before the model wrote: the evidence was decided
            self.console.print(markdown(evidence_text(self._sources, (), 0, 0)))

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
        console.print(Text(status_line(answer, self.settings), style="dim"))
        console.line()

    def _ask_plain(self, question: str) -> None:
        """The final answer (citations checked), then the sources it cites: plain text."""
        out = self.console.file
        events = self._events(question)
        answer: Answer | None = None
        try:
            for event in events:
                if isinstance(event, Answer):
                    answer = event
        except Exception as err:  # piped: one line on stderr, the next question still runs
            events.close()
            self.failed(err)
            return
        finally:
            events.close()
        if answer is None:
            self.error("the assistant stopped without finishing the answer")
            return
        out.write(clean(answer.text.strip()) + "\n\n")
        out.flush()


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
    interactive = isatty(input)

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
                              color_system=None, force_terminal=False, emoji=False,
                              soft_wrap=True)  # an error stays one line, however long
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
    except Exception as err:  # the session stays; every question tries again
        startup_error = user_message(err)
        if startup_error is None:
            raise
    except KeyboardInterrupt:
        return 130
    try:
        if interactive:
            _banner(ui, stats)
            if startup_error:
                ui.error(startup_error, failed=False)
            interactive_loop(ui, settings, conv, input, output)
            return 0
        if startup_error:
            ui.error(startup_error, failed=False)  # counted when a question actually fails
        return piped_loop(ui, input)
    finally:
        if handle is not None:
            with contextlib.suppress(Exception):
                handle.close()


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

