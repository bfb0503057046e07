"""How the chat looks: answers as Markdown with highlighted markers, the papers being read,
the Sources panel, a paper's full abstract and the status line. Untrusted text goes through
`text.clean` here, where it becomes something a terminal prints."""

from __future__ import annotations

import re

import time
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.markdown import Markdown
from rich.panel import Panel
from rich.segment import Segment
from rich.spinner import Spinner
from rich.style import Style
from rich.text import Text

from .answer_text import evidence_text
from .config import Settings
from .text import MARKER, clean
from .types import Answer, Paper, Retrieved, Source

# Citation markers, and the claim check's mark on a line its source does not support.
_MARKER = re.compile(rf"{MARKER.pattern}|\(unverified\)", MARKER.flags)
UNVERIFIED_STYLE = Style(color="yellow", italic=True)
MARKER_STYLE = Style(color="cyan", bold=True)
_SNIPPET_CHARS = 280


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
                    mark = UNVERIFIED_STYLE if match.group().startswith("(") else MARKER_STYLE
                    yield Segment(match.group(), (style or Style()) + mark)
                    position = match.end()
                if position < len(text):
                    yield Segment(text[position:], style)
            yield Segment.line()


def markdown(text: str) -> _Cited:
    """An answer as Markdown; each of its lines (one per paper) stays a line of its own."""
    return _Cited(Markdown(clean(text).replace("\n", "  \n"), hyperlinks=False))


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


class Waiting:
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
    if answer.left_out:
        parts.append(f"{len(answer.left_out)} unsupported left out (/unverified)")
    return " · ".join(parts)


def snippet(text: str, limit: int = _SNIPPET_CHARS) -> str:
    text = " ".join(clean(text).split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + " …"


def reading(event: Retrieved) -> Any:
    """The evidence as soon as it is decided, before the model writes the direct answer."""
    if not event.sources:
        return Text.assemble(("No paper in the collection answers this closely enough", "yellow"),
                             (f"  ({_ms(event.retrieval_s)})", "dim"))
    n = len(event.sources)
    head = Text.assemble((f"{n} paper{'s' if n != 1 else ''} answer", "bold"),
                         (f" · found in {_ms(event.retrieval_s)} · writing the answer…", "dim"))
    body = evidence_text(event.sources, event.related, len(event.more), 0)
    return Group(head, markdown(body))


def paper_panel(source: Source, paper: Paper | None) -> Panel:
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
    title = Text.assemble((f"[{source.n}] ", MARKER_STYLE),
                          (clean(paper.title if paper is not None else source.title), "bold"))
    return Panel(Group(*body), title=title, title_align="left", border_style="cyan")



def announce_queue(events: Iterator[Any], settings: Settings,
                   say: Callable[[str], None]) -> Iterator[Any]:
    """The events as they come; when the evidence is decided and the model is asked next, say
    if every slot of a shared llama.cpp server is answering (the request waits in its queue).
    Looked at then, not at start: a new process spends 1-5 s before it asks, and in a load test
    of 8 clients the slots changed hands in between (0 of 8 said they waited, 3 waited 30 s)."""
    from .local_server import queue_notice

    try:
        for event in events:
            if isinstance(event, Retrieved) and event.sources:
                notice = queue_notice(settings.llm_base_url, settings.llm_api_key)
                if notice:
                    say(notice)
            yield event
    finally:
        close = getattr(events, "close", None)
        if close:
            close()  # a cancelled answer closes the answer's own generator too


def live_answer(console: Console, events) -> Answer | None:
    """`papers ask` on a terminal: the evidence at once, the direct answer above it as each
    checked sentence arrives, then the whole answer printed in their place."""
    from rich.live import Live

    from .answer_text import EVIDENCE_HEADER

    answer, streamed, evidence = None, "", Text("")
    with Live(Waiting("searching the collection…"), console=console, refresh_per_second=10,
              transient=True, vertical_overflow="crop") as live:
        for event in events:
            if isinstance(event, Retrieved):
                evidence = reading(event)
                live.update(TailView(evidence, console.size.height - 2))
            elif isinstance(event, str):
                streamed += event
                opening = streamed.split("\n\n" + EVIDENCE_HEADER)[0]
                live.update(TailView(Group(markdown(opening), Text(""), evidence),
                                     console.size.height - 2))
            elif isinstance(event, Answer):
                answer = event
    return answer
