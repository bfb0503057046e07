"""Conversation state for `papers chat`: history, settings per session, transcript. No I/O.

`Conversation` wraps an `answer.Assistant` (anything with `stream_events(question, history, *,
k, filters, model)` and `paper(paper_id)`). Each question goes to the assistant with the earlier
turns, so follow-ups ("what strategies does it propose?") are rewritten into standalone queries
there; the turn is kept only once its `Answer` arrives, so a cancelled or failed answer leaves
the history as it was.

The terminal UI (`assistant.repl`) only renders what this module returns.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from .text import clean
from .types import Answer, Claim, Filters, Paper, Retrieved, Source, Turn

# Longest question sent to retrieval and the model; longer input is trimmed (with a notice).
MAX_QUESTION_CHARS = 2000
# Earlier turns handed to the assistant: enough for follow-ups, bounded for the model's context.
MAX_HISTORY_TURNS = 6
MAX_K = 100

# name -> (argument synopsis, one-line help); the order is the order `/help` lists them in.
COMMANDS: dict[str, tuple[str, str]] = {
    "/help": ("", "show this help"),
    "/sources": ("", "papers of the last answer, with their quotes and scores"),
    "/open": ("N", "full abstract of source N"),
    "/more": ("", "the papers that also answer, beyond the list's first 8"),
    "/unverified": ("", "the last answer's sentences the check left out, marked"),
    "/k": ("[N]", "papers to retrieve per question (show or set)"),
    "/model": ("[NAME]", "model for the next answers (show or set)"),
    "/filter": ("[year>=Y year<=Y year=Y1-Y2 category=C source=FILE | clear]",
                "restrict retrieval (show, set or clear)"),
    "/save": ("[FILE]", "save the conversation as Markdown with citations"),
    "/export": ("[FILE]", "the last answer as Markdown with its numbered references"),
    "/bib": ("[FILE]", "BibTeX of the papers the last answer cites (shown, or written to FILE)"),
    "/reset": ("", "forget the conversation (start fresh follow-ups)"),
    "/quit": ("", "leave (also Ctrl-D)"),
}
ALIASES = {"/exit": "/quit", "/q": "/quit", "/?": "/help", "/clear": "/reset", "/h": "/help"}


class ChatInputError(ValueError):
    """A slash command's argument is wrong; `str(err)` is one line saying what to type."""


# --- input helpers -------------------------------------------------------------------------------


def trim_question(text: str, limit: int = MAX_QUESTION_CHARS) -> tuple[str, bool]:
    """`text` stripped and cut to `limit` characters (at a word boundary when one is close)."""
    text = text.strip()
    if len(text) <= limit:
        return text, False
    cut = text[:limit]
    space = cut.rfind(" ")
    if space > limit * 0.8:
        cut = cut[:space]
    return cut.rstrip(), True


@dataclass(frozen=True)
class Command:
    name: str  # canonical, e.g. "/open"
    arg: str  # the rest of the line, stripped


def parse_command(line: str) -> Command | None:
    """A slash command (`/open 2`), or None when `line` is a question.

    Unknown commands come back with their own name; `suggest_command` proposes the closest.
    """
    text = line.strip()
    if not text.startswith("/") or text.startswith("//"):
        return None
    head, _, rest = text.partition(" ")
    if "/" in head[1:]:  # a path such as /usr/lib is not a command
        return None
    name = head.lower()
    name = ALIASES.get(name, name)
    return Command(name, rest.strip())


def suggest_command(name: str) -> str | None:
    """The known command closest to a mistyped `name`, if any is close."""
    match = difflib.get_close_matches(name.lower(), list(COMMANDS) + list(ALIASES), n=1,
                                      cutoff=0.5)
    if not match:
        return None
    return ALIASES.get(match[0], match[0])


def parse_positive_int(arg: str, what: str, maximum: int | None = None) -> int:
    try:
        value = int(arg.strip())
    except ValueError:
        raise ChatInputError(f"{what} must be a whole number, not '{arg.strip()}'") from None
    if value < 1 or (maximum is not None and value > maximum):
        limit = f"between 1 and {maximum}" if maximum else "at least 1"
        raise ChatInputError(f"{what} must be {limit}, not {value}")
    return value


# --- filters -------------------------------------------------------------------------------------

_FILTER_TOKEN = re.compile(r"^(?P<key>[a-z_]+)\s*(?P<op>>=|<=|=|>|<|:)\s*(?P<value>.*)$")
_YEAR_KEYS = {"year", "years", "y"}
_CATEGORY_KEYS = {"category", "cat", "categories", "c"}
_SOURCE_KEYS = {"source", "src", "file", "s"}
FILTER_HELP = ("use year>=2022, year<=2023, year=2021-2023, category=cs.CL, source=FILE, "
               "or 'clear'")


def _year(value: str) -> int:
    value = value.strip()
    if not re.fullmatch(r"\d{4}", value):
        raise ChatInputError(f"'{value}' is not a year; {FILTER_HELP}")
    return int(value)


def parse_filters(text: str, current: Filters | None = None) -> Filters:
    """Filters from `/filter` arguments, updating `current` field by field.

    `year>=2022 category=cs.CL source=000_x.txt`, `year=2021-2023`, `year=2022`, `year>2021`;
    `key=` (empty value) clears that field; `clear` (or `none`, `off`) clears all of them.
    """
    current = current or Filters()
    # `year >= 2022` typed with spaces: glue operators to their key and value first.
    text = re.sub(r"\s*(>=|<=|=|>|<)\s*", r"\1", text.strip())
    tokens = text.split()
    if not tokens:
        return current
    if len(tokens) == 1 and tokens[0].lower() in {"clear", "none", "off", "reset", "all"}:
        return Filters()
    result = current
    for token in tokens:
        match = _FILTER_TOKEN.match(token)
        if not match:
            raise ChatInputError(f"cannot read filter '{token}'; {FILTER_HELP}")
        key, op, value = match["key"].lower(), match["op"], match["value"].strip()
        if op == ":":
            op = "="
        if key in _YEAR_KEYS:
            result = _apply_year(result, op, value)
        elif key in _CATEGORY_KEYS or key in _SOURCE_KEYS:
            if op != "=":
                raise ChatInputError(f"'{key}' takes '=', as in {key}=...; {FILTER_HELP}")
            field = "category" if key in _CATEGORY_KEYS else "source"
            result = replace(result, **{field: value or None})
        else:
            raise ChatInputError(f"unknown filter '{key}'; {FILTER_HELP}")
    if result.year_min and result.year_max and result.year_min > result.year_max:
        raise ChatInputError(f"year range {result.year_min}-{result.year_max} is empty")
    return result


def _apply_year(filters: Filters, op: str, value: str) -> Filters:
    if op == "=" and not value:
        return replace(filters, year_min=None, year_max=None)
    if op == "=":
        low, sep, high = value.partition("-")
        if sep:  # year=2021-2023, year=2021- or year=-2023
            return replace(filters, year_min=_year(low) if low.strip() else None,
                           year_max=_year(high) if high.strip() else None)
        year = _year(value)
        return replace(filters, year_min=year, year_max=year)
    year = _year(value)
    if op == ">=":
        return replace(filters, year_min=year)
    if op == ">":
        return replace(filters, year_min=year + 1)
    if op == "<=":
        return replace(filters, year_max=year)
    return replace(filters, year_max=year - 1)  # "<"


def describe_filters(filters: Filters | None) -> str:
    """`year 2021-2023, category cs.CL` or `none`."""
    if filters is None or filters.is_empty():
        return "none"
    parts = []
    if filters.year_min and filters.year_max:
        parts.append(f"year {filters.year_min}" if filters.year_min == filters.year_max
                     else f"year {filters.year_min}-{filters.year_max}")
    elif filters.year_min:
        parts.append(f"year >= {filters.year_min}")
    elif filters.year_max:
        parts.append(f"year <= {filters.year_max}")
    if filters.category:
        parts.append(f"category {filters.category}")
    if filters.source:
        parts.append(f"source {filters.source}")
    return ", ".join(parts)


def source_label(source: Source) -> str:
    """`Title (2023)`, or just the title when the year is unknown."""
    title = clean(source.title)  # untrusted: printed on terminals
    return f"{title} ({source.year})" if source.year else title


# --- the conversation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    """One answered question as the transcript keeps it."""

    question: str
    answer: Answer
    at: datetime


class Conversation:
    """A chat session over an Assistant: history, per-session k/model/filters, last sources."""

    def __init__(self, assistant: Any, *, k: int | None = None, model: str | None = None,
                 filters: Filters | None = None, max_history_turns: int = MAX_HISTORY_TURNS):
        self.assistant = assistant
        self.k = k
        self.model = model
        self.filters = filters or Filters()
        self.max_history_turns = max_history_turns
        self.history: list[Turn] = []
        self.exchanges: list[Exchange] = []  # the whole session, for /save (kept on /reset)
        self.last_answer: Answer | None = None
        self.last_retrieved: Retrieved | None = None
        self.last_sources: tuple[Source, ...] = ()
        self._resets: list[int] = []  # indexes into exchanges where /reset happened

    # -- asking --

    def stream_events(self, question: str) -> Iterator[Retrieved | str | Answer]:
        """`Retrieved`, then text deltas, then the `Answer` (appended to the history).

        Closing the generator early (Ctrl-C) or an error from the assistant leaves the history
        unchanged.
        """
        question = question.strip()
        if not question:
            raise ChatInputError("empty question")
        events = self.assistant.stream_events(
            question,
            list(self.history[-self.max_history_turns:]) if self.max_history_turns else [],
            k=self.k,
            filters=None if self.filters.is_empty() else self.filters,
            model=self.model,
        )
        try:
            for event in events:
                if isinstance(event, Retrieved):
                    self.last_retrieved = event
                    self.last_sources = tuple(event.sources)
                elif isinstance(event, Answer):
                    self._record(question, event)
                yield event
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()

    def ask(self, question: str) -> Answer:
        """The whole answer at once (kept in the history like a streamed one)."""
        answer = None
        for event in self.stream_events(question):
            if isinstance(event, Answer):
                answer = event
        if answer is None:
            raise RuntimeError("the assistant finished without an answer")
        return answer

    def _record(self, question: str, answer: Answer) -> None:
        # The papers that answer are what "it" and "they" of the next question point to: those
        # cited, then a list's papers beyond the 8 shown (/more), so that "which of them use a
        # mean teacher?" after "which papers propose test-time adaptation methods?" also reads
        # the four /more shows.
        answering = (*answer.sources, *answer.more)
        self.history.append(Turn(question, answer.text, tuple(s.paper_id for s in answering)))
        self.exchanges.append(Exchange(question, answer, datetime.now()))
        self.last_answer = answer
        self.last_sources = tuple(answer.sources)

    # -- settings --

    def reset(self) -> None:
        """Forget the conversation: follow-ups start fresh (the transcript keeps the session)."""
        self.history.clear()
        self.last_answer = None
        self.last_retrieved = None
        self.last_sources = ()
        if self.exchanges and (not self._resets or self._resets[-1] != len(self.exchanges)):
            self._resets.append(len(self.exchanges))

    def set_k(self, value: int | str) -> int:
        self.k = parse_positive_int(str(value), "k", MAX_K)
        return self.k

    def set_model(self, name: str) -> str:
        name = name.strip()
        if not name or any(ch.isspace() for ch in name):
            raise ChatInputError("give one model name, as in /model qwen2.5:7b")
        self.model = name
        return name

    def set_filters(self, text: str) -> Filters:
        """Update the filters from `/filter` arguments (see `parse_filters`)."""
        self.filters = parse_filters(text, self.filters)
        return self.filters

    # -- sources --

    def source(self, n: int | str) -> Source:
        """Source `[n]` of the last answer (or of the last retrieval, when it was cancelled)."""
        if not self.last_sources:
            raise ChatInputError("no sources yet: ask a question first")
        number = parse_positive_int(str(n), "the source number")
        more = self.last_answer.more if self.last_answer is not None else ()
        for source in (*self.last_sources, *more):
            if source.n == number:
                return source
        numbers = ", ".join(str(s.n) for s in self.last_sources)
        raise ChatInputError(f"there is no source [{number}]; the last sources are {numbers}")

    def more(self) -> tuple[Source, ...]:
        """The last answer's papers beyond the list's cap (empty: there were none)."""
        if self.last_answer is None:
            raise ChatInputError("no answer yet: ask a question first")
        return self.last_answer.more

    def unverified(self) -> tuple[Claim, ...]:
        """The last answer's sentences the check did not support (left out of its text)."""
        if self.last_answer is None:
            raise ChatInputError("no answer yet: ask a question first")
        return self.last_answer.left_out

    def open_source(self, n: int | str) -> tuple[Source, Paper | None]:
        """Source `[n]` and its full paper (None when the store no longer has it)."""
        source = self.source(n)
        paper = self.assistant.paper(source.paper_id)
        return source, paper

    # -- transcript --

    def transcript_markdown(self, title: str = "Paper assistant chat") -> str:
        """The session as Markdown: each question, its answer with `[n]` markers, its sources."""
        if not self.exchanges:
            return f"# {title}\n\n_No questions answered yet._\n"
        started = self.exchanges[0].at.strftime("%Y-%m-%d %H:%M")
        lines = [f"# {title}", "", f"_{started}_", ""]
        for index, exchange in enumerate(self.exchanges):
            if index in self._resets:
                lines += ["---", "", "_(conversation reset)_", ""]
            answer = exchange.answer
            lines += [f"## {_one_line(exchange.question)}", ""]
            if exchange.question.strip() != _one_line(exchange.question):
                lines += [_quote(exchange.question), ""]
            lines += [clean(answer.text.strip()) or "_(empty answer)_", ""]
            model = answer.model or self.model or ""
            meta = [m for m in (model, f"{answer.timings.total_s:.1f} s"
                                if answer.timings.total_s else "") if m]
            if meta:
                lines += [f"<sub>{' · '.join(meta)}</sub>", ""]
        return "\n".join(lines).rstrip() + "\n"


def _one_line(text: str, limit: int = 120) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.strip().splitlines())
