"""The chat's slash commands (/help, /k, /model, /filter, /sources, /open, /save, ...)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .answer_text import UNVERIFIED, evidence_lines
from .chat import COMMANDS, ChatInputError, describe_filters, source_label
from .chat_render import MARKER_STYLE, markdown, paper_panel, snippet


class Commands:
    """`cmd_<name>(arg)` for each slash command; mixed into ChatUI (its console and conv)."""

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
            table.add_row(Text(f"[{source.n}]", style=MARKER_STYLE), head)
            table.add_row("", Text(snippet(source.text), style="dim"))
        self.console.print(table)
        self.console.print("[dim]/open N shows the full abstract of source N.[/]")
        self.console.line()

    def cmd_more(self, arg: str) -> None:
        more = self.conv.more()
        if not more:
            self.console.print("[dim]The last answer listed every paper that answers it.[/]")
            return
        self.console.print(markdown("\n".join(evidence_lines(more))))
        self.console.print("[dim]/open N shows the full abstract of paper N.[/]")
        self.console.line()

    def cmd_unverified(self, arg: str) -> None:
        left = self.conv.unverified()
        if not left:
            self.console.print("[dim]The check left nothing out of the last answer.[/]")
            return
        for claim in left:
            self.console.print(markdown(claim.text + UNVERIFIED))
            self.console.print(Text(f"  why: {claim.reason}", style="dim"))
        self.console.print("[dim]Left out of the answer, each for the reason shown (/open N "
                           "shows a whole abstract).[/]")
        self.console.line()

    def cmd_open(self, arg: str) -> None:
        if not arg:
            raise ChatInputError("which source? as in /open 1")
        source, paper = self.conv.open_source(arg)
        self.console.print(paper_panel(source, paper))
        self.console.line()

    def cmd_save(self, arg: str) -> None:
        if not self.conv.exchanges:
            self.console.print("[yellow]Nothing to save yet: ask a question first.[/]")
            return
        path = self._write(arg, "papers-chat-%Y%m%d-%H%M%S.md", self.conv.transcript_markdown())
        n = len(self.conv.exchanges)
        plural = "s" if n != 1 else ""
        self.console.print(f"[dim]Saved {n} answer{plural} to[/] {escape(str(path))}")

    def cmd_export(self, arg: str) -> None:
        answer = self._last_answer()
        path = self._write(arg, "papers-answer-%Y%m%d-%H%M%S.md", answer.to_markdown())
        self.console.print(f"[dim]Saved the answer with its references to[/] {escape(str(path))}")

    def cmd_bib(self, arg: str) -> None:
        answer = self._last_answer()
        text = answer.bibtex()
        if not text:
            self.console.print("[yellow]The last answer cites no paper.[/]")
            return
        if not arg.strip():
            self.console.print(Text(text.rstrip()), highlight=False)
            return
        path = self._write(arg, "papers-%Y%m%d-%H%M%S.bib", text)
        n = len(answer.sources)
        self.console.print(f"[dim]Saved {n} entr{'ies' if n != 1 else 'y'} to[/] "
                           f"{escape(str(path))}")

    def _last_answer(self):
        if self.conv.last_answer is None:
            raise ChatInputError("no answer yet: ask a question first")
        return self.conv.last_answer

    @staticmethod
    def _write(arg: str, default_name: str, text: str) -> Path:
        """`text` to the file `arg` names (a folder: a dated file in it); one-line errors."""
        name = arg.strip().strip("'\"") or datetime.now().strftime(default_name)
        path = Path(name).expanduser()
        if path.is_dir():
            path = path / datetime.now().strftime(default_name)
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as err:
            raise ChatInputError(f"cannot write {path}: {err.strerror or err}") from None
        return path

    def _cited_numbers(self) -> set[int]:
        answer = self.conv.last_answer
        if answer is None or tuple(answer.sources) != tuple(self.conv.last_sources):
            return set()
        return {c.n for c in answer.citations}
