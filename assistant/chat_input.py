"""The chat's input: prompt-toolkit session (history, completion, Alt-Enter), no echo while an
answer streams, and the interactive and piped loops."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from .chat import COMMANDS, Conversation, describe_filters
from .config import Settings

HISTORY_FILE = "chat_history"


@contextlib.contextmanager
def no_echo(stream: TextIO) -> Iterator[None]:
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


def isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def interactive_loop(ui: Any, settings: Settings, conv: Conversation, input: TextIO,
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


def piped_loop(ui: Any, lines: Iterable[str]) -> int:
    try:
        for line in lines:
            if not ui.handle(line.rstrip("\n")):
                break
    except KeyboardInterrupt:
        return 130
    return 1 if ui.failures > 0 else 0

