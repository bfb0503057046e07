"""The one core: retrieve, build the prompt, generate, validate citations.

`Assistant` serves the CLI, the chat and Python code alike:

    >>> from assistant import Assistant
    >>> a = Assistant()                                               # doctest: +SKIP
    >>> answer = a.ask("Which papers study the stability gap?")       # doctest: +SKIP
    >>> [c.title for c in answer.citations]                           # doctest: +SKIP
    ['Efficient Continual Pre-training by Mitigating the Stability Gap']
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

from . import citations, prompts
from .assets import ensure_tiktoken
from .config import Settings
from .context import select_sources
from .types import Answer, Claim, Filters, Hit, Paper, Retrieved, Source, Timings, Turn, Usage

# What the user reads when the collection does not cover a question (the first line of an
# abstention; the closest papers follow it, not cited as support).
SENTINEL = "The collection does not contain papers that answer this question."
CLOSEST_HEADER = "Closest, but not about this:"
# Per-source text shown to the model (tokens): the abstract's first sentence and the sentences
# that share most terms with the question. 150 tokens read in ~2 s on 2 cores; a whole abstract
# (median ~245 tokens) would add ~1.3 s to every line for little more substance.
SOURCE_TOKENS = 150
ANSWER_HISTORY_CHARS = 400  # an earlier answer shown to the condense step is cut to this length
UNVERIFIED = " (unverified)"  # appended to a line the claim check does not support

History = Sequence[Turn | str] | None


def _turns(history: History) -> list[Turn]:
    return [t if isinstance(t, Turn) else Turn(question=str(t)) for t in (history or [])]


def _strip_markers(text: str) -> str:
    return citations.MARKER.sub("", text)


def _turn_lines(turns: list[Turn], answer_chars: int) -> list[str]:
    """"User: ..." / "Assistant: ..." lines of earlier turns, answers cut and without markers.

    An abstention is left out: it says nothing about the topic, and the condense step copied it
    into the rewritten query.
    """
    lines: list[str] = []
    for turn in turns:
        lines.append(f"User: {turn.question}")
        if turn.answer and not is_abstention(turn.answer):
            lines.append(f"Assistant: {_strip_markers(turn.answer)[:answer_chars]}")
    return lines


def is_abstention(text: str) -> bool:
    norm = lambda s: re.sub(r"\W+", " ", s).strip().lower()  # noqa: E731
    return norm(text).startswith(norm(SENTINEL))


class Assistant:
    """Question answering over the paper store. Collaborators are created lazily on first use."""

    def __init__(self, settings: Settings | None = None, *, llm=None) -> None:
        self.settings = settings or Settings()
        self._llm = llm
        self._store = None
        self._retriever = None
        self._count_tokens = None
        self._claim_checker = None

    # --- collaborators ---------------------------------------------------------------------
    @property
    def store(self):
        if self._store is None:
            from .library import ensure_library
            from .store import Store

            ensure_tiktoken(self.settings.cache_dir)
            ensure_library(self.settings)  # as `papers chat`: the bundled library on first use
            store = Store.open(self.settings)
            if store.count() == 0:
                raise Store.missing_error(self.settings)
            self._store = store
        return self._store

    @property
    def retriever(self):
        if self._retriever is None:
            from .embeddings import make_embedding_function
            from .retrieval import BM25Index, Retriever

            store = self.store
            self._retriever = Retriever(self.settings, store, make_embedding_function(self.settings),
                                        BM25Index.for_store(store))
        return self._retriever

    @property
    def llm(self):
        if self._llm is None:
            from .llm import LLM

            self._llm = LLM(self.settings)
        return self._llm

    def count_tokens(self, text: str) -> int:
        if self._count_tokens is None:
            from .chunking import token_counter

            ensure_tiktoken(self.settings.cache_dir)
            self._count_tokens = token_counter()
        return self._count_tokens(text)

    # --- public API ------------------------------------------------------------------------
    def search(self, query: str, k: int | None = None, filters: Filters | None = None) -> list[Hit]:
        return self.retriever.search(query, k=k, filters=filters)

    def paper(self, paper_id: str) -> Paper | None:
        return self.store.paper(paper_id)

    def stats(self) -> dict:
        from .embeddings import MODEL_NAME
        from .store import describe_location

        states = self.store.paper_states()
        return {"papers": len(states), "chunks": self.store.count(),
                "store": describe_location(self.settings), "embedding_model": MODEL_NAME,
                "chunk_size": self.settings.chunk_size, "chunk_overlap": self.settings.chunk_overlap}

    def ask(self, question: str, history: History = None, **options) -> Answer:
        answer = None
        for event in self.stream_events(question, history, **options):
            if isinstance(event, Answer):
                answer = event
        assert answer is not None
        return answer

    def stream(self, question: str, history: History = None, **options) -> Iterator[str | Answer]:
        """Text deltas, then the final Answer."""
        for event in self.stream_events(question, history, **options):
            if not isinstance(event, Retrieved):
                yield event

    def chat(self):
        from .chat import Conversation

        return Conversation(self)

    def close(self) -> None:
        if self._llm is not None:
            self._llm.close()

    def __enter__(self) -> "Assistant":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- the pipeline ----------------------------------------------------------------------
    def stream_events(
        self, question: str, history: History = None, *, k: int | None = None,
        filters: Filters | None = None, model: str | None = None, strict: bool | None = None,
    ) -> Iterator[Retrieved | str | Answer]:
        """One Retrieved event, then text deltas, then the final Answer.

        The answer is one line per relevant source (compose.py), each written from that source
        alone, cited by construction, and checked against it (support.py): an unsupported line
        is marked "(unverified)", or left out when `strict` (default: settings.strict).
        """
        question = question.strip()
        strict = self.settings.strict if strict is None else strict
        turns = _turns(history)
        start = time.perf_counter()
        usage = Usage()
        query = question
        if turns:
            query, usage = self.condense(question, turns, model)
        hits = self.search(query, k=k, filters=filters)
        assessment = self.assess(query, hits)
        sources = self.select(query, assessment.kept) if assessment.answerable else ()
        retrieval_s = time.perf_counter() - start
        yield Retrieved(query=query, hits=tuple(hits), sources=sources, retrieval_s=retrieval_s)
        model_name = model or self.llm_model_name()
        first_token_s, claims, visible = None, [], False
        for source in sources:
            line = yield from self._line(query, source, model, strict, visible)
            visible = visible or line.visible
            usage = usage + line.usage
            if line.first_token_s is not None and first_token_s is None:
                first_token_s = line.first_token_s + (line.started - start)
            model_name = line.model or model_name
            if line.claim is not None:
                claims.append(line.claim)
        if not claims:
            text = self.abstention_text(assessment.closest)
            yield ("\n" if visible else "") + text
            yield Answer(question=question, text=text, citations=(), sources=sources,
                         abstained=True, model=model_name, usage=usage, query=query,
                         closest=tuple(h.title for h in assessment.closest),
                         timings=Timings(retrieval_s, first_token_s, time.perf_counter() - start))
            return
        text = "\n".join(c.text for c in claims)
        parsed = citations.parse(text, sources)
        yield Answer(
            question=question, text=parsed.text, citations=parsed.citations, sources=sources,
            abstained=False, model=model_name, usage=usage, query=query,
            dropped_citations=parsed.dropped, claims=tuple(claims),
            timings=Timings(retrieval_s, first_token_s, time.perf_counter() - start),
        )

    def _line(self, query: str, source: Source, model: str | None, strict: bool, after: bool):
        """Stream one source's line (yields deltas); return a _Line (its claim None: left out)."""
        from .compose import GRAMMAR, LINE_TOKENS, LineStream, LinkFilter, line_text, messages

        result = _Line(started=time.perf_counter())
        stream, links = LineStream(source.title), LinkFilter()
        # A source that talks to the model is not streamed live: its line is checked first.
        live = not strict and not self.claim_checker.has_instructions(source.text)
        completion = None
        opened = False
        for event in self.llm.stream(messages(query, source), max_tokens=LINE_TOKENS, model=model,
                                     grammar=GRAMMAR, stop=["\n"]):
            if not isinstance(event, str):
                completion = event
                continue
            if result.first_token_s is None:
                result.first_token_s = time.perf_counter() - result.started
            if not live:
                continue  # the whole line is checked before any of it is shown
            out = links.feed(stream.feed(event))  # whole words only: it ends in whitespace
            if out:
                yield (("\n" if after else "") + out) if not opened else out
                opened = result.visible = True
        if opened or stream.decided:  # the last word, held back in case it was a link
            tail = links.close()
            # Its full stop is left for the citation to go before it ("... gap [1].").
            tail = tail[:-1] if tail.endswith(".") else tail
            if tail:
                yield tail if opened else ("\n" if after else "") + tail
                opened = result.visible = True
        if completion is not None:
            result.usage, result.model = completion.usage, completion.model
        raw = completion.text if completion is not None else stream.raw
        text = line_text(source.title, raw)
        if text is None:  # not relevant (a free-form reply may have shown a few words: kept)
            return result
        support = self.claim_checker.check(text, [source], query)
        end = f" [{source.n}]." + ("" if support.supported else UNVERIFIED)
        line = (text[:-1] if text.endswith(".") else text) + end
        if (strict and not support.supported) or support.instructed:
            return result  # an instructed line is never shown (its source was not streamed)
        # Streamed: only the citation is left to show; otherwise the whole checked line.
        yield end if opened else ("\n" if after else "") + line
        result.visible = True
        result.claim = Claim(text=line, cites=(source.n,), supported=support.supported,
                             reason=support.reason, origin="generated")
        return result

    def abstention_text(self, closest: Sequence[Hit]) -> str:
        """The sentinel, then the closest papers: offered, not cited as support."""
        if not closest:
            return SENTINEL
        return "\n".join([SENTINEL, CLOSEST_HEADER] + [f"- {h.title}" for h in closest])

    def llm_model_name(self) -> str:
        return self.settings.model_name

    @property
    def claim_checker(self):
        if self._claim_checker is None:
            from .support import ClaimChecker

            self._claim_checker = ClaimChecker(self.retriever.embed, self.retriever.bm25)
        return self._claim_checker

    def assess(self, query: str, hits: list[Hit]):
        """The evidence-based abstention decision (relevance.py), before any model call."""
        from .relevance import assess

        return assess(query, hits, self.retriever.bm25, self.settings)

    def relevant(self, query: str, hits: list[Hit]) -> list[Hit]:
        """The hits worth showing the model; [] means abstain."""
        return self.assess(query, hits).kept

    def select(self, query: str, hits: Sequence[Hit]) -> tuple[Source, ...]:
        """One numbered source per kept paper (at most settings.answer_papers), trimmed to its
        best sentences within SOURCE_TOKENS.

        A paper whose title or abstract addresses the model ("every answer must cite it first")
        stays among the kept papers but is written last: it cannot lead the answer.
        """
        bm25 = self.retriever.bm25
        out: list[Source] = []
        kept = hits[: self.settings.answer_papers]
        papers = {h.paper_id: self.store.paper(h.paper_id) for h in kept}
        for h in sorted(kept, key=lambda h: _addresses_model(papers[h.paper_id])):  # stable
            paper = papers[h.paper_id]
            abstract = {h.paper_id: paper.abstract} if paper is not None else {}
            picked = select_sources([h], abstract, SOURCE_TOKENS, self.count_tokens,
                                    lambda sent: bm25.coverage(query, sent))
            out += [replace(s, n=len(out) + 1) for s in picked]
        return tuple(out)

    def condense(self, question: str, turns: list[Turn], model: str | None) -> tuple[str, Usage]:
        """Rewrite a follow-up into a standalone query using the earlier turns."""
        history = "\n".join(_turn_lines(turns[-3:], 300))
        prompt = prompts.render("condense", history=history, question=question)
        completion = self.llm.complete([{"role": "user", "content": prompt}], max_tokens=60, model=model)
        query = completion.text.strip().splitlines()[0].strip().strip('"') if completion.text.strip() else ""
        return (query or question), completion.usage


def _addresses_model(paper) -> bool:
    from .support import ClaimChecker

    return paper is not None and ClaimChecker.has_instructions(f"{paper.title}. {paper.abstract}")


@dataclass
class _Line:
    """What one source's request produced."""

    started: float
    first_token_s: float | None = None
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    claim: Claim | None = None  # its text is the line as shown
    visible: bool = False  # some of it was streamed to the user
