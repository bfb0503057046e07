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

from . import citations, prompts
from .assets import ensure_tiktoken
from .config import Settings
from .context import render_sources, select_sources
from .types import Answer, Filters, Hit, Paper, Retrieved, Timings, Turn, Usage

# What the user reads when the collection does not cover a question ...
SENTINEL = "The collection does not contain papers that answer this question."
# ... and the fixed token the model is told to reply with instead. A sentence such as SENTINEL in
# the prompt made the 1.5B model abstain on answerable questions (4 of 4 tried); a bare token
# did not (it answered 2 of 2 answerable ones and abstained on 2 of 2 off-topic ones).
SENTINEL_TOKEN = "NO_ANSWER"
# Prompt-side allowances (tokens): the chat template's own markup, and history kept for context.
TEMPLATE_OVERHEAD = 40
HISTORY_TOKENS = 300
MAX_SOURCE_TOKENS = 800  # context kept even when the window is larger: ~9 s of prompt on 2 cores
ANSWER_HISTORY_CHARS = 400  # an earlier answer shown to the model is cut to this length

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
        if turn.answer and turn.answer != SENTINEL:
            lines.append(f"Assistant: {_strip_markers(turn.answer)[:answer_chars]}")
    return lines


def is_abstention(text: str) -> bool:
    norm = lambda s: re.sub(r"\W+", " ", s).strip().lower()  # noqa: E731
    return SENTINEL_TOKEN in text or norm(SENTINEL) in norm(text)


class Assistant:
    """Question answering over the paper store. Collaborators are created lazily on first use."""

    def __init__(self, settings: Settings | None = None, *, llm=None) -> None:
        self.settings = settings or Settings()
        self._llm = llm
        self._store = None
        self._retriever = None
        self._count_tokens = None

    # --- collaborators ---------------------------------------------------------------------
    @property
    def store(self):
        if self._store is None:
            from .store import Store

            ensure_tiktoken(self.settings.cache_dir)
            store = Store.open(self.settings)
            if store.count() == 0:
                raise Store._missing(self.settings)
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
        filters: Filters | None = None, model: str | None = None,
    ) -> Iterator[Retrieved | str | Answer]:
        """One Retrieved event, then text deltas, then the final Answer."""
        question = question.strip()
        turns = _turns(history)
        start = time.perf_counter()
        usage = Usage()
        query = question
        if turns:
            query, usage = self.condense(question, turns, model)
        hits = self.search(query, k=k, filters=filters)
        kept = self.relevant(query, hits)
        sources = self.select(query, kept, question, turns) if kept else ()
        retrieval_s = time.perf_counter() - start
        yield Retrieved(query=query, hits=tuple(hits), sources=sources, retrieval_s=retrieval_s)
        model_name = model or self.llm_model_name()
        if not sources:
            yield SENTINEL
            yield Answer(question=question, text=SENTINEL, citations=(), sources=(), abstained=True,
                         model=model_name, usage=usage, query=query,
                         timings=Timings(retrieval_s, None, time.perf_counter() - start))
            return
        messages = self.messages(question, sources, turns)
        first_token_s, parts = None, []
        completion = None
        for event in self.llm.stream(messages, max_tokens=self.settings.max_answer_tokens, model=model):
            if isinstance(event, str):
                if first_token_s is None:
                    first_token_s = time.perf_counter() - start
                parts.append(event)
                yield event
            else:
                completion = event
        raw = completion.text if completion is not None else "".join(parts)
        bm25 = self.retriever.bm25
        repaired = citations.attribute(raw, sources, bm25.coverage)
        parsed = citations.parse(repaired, sources)
        if parsed.citations and not citations.has_words(parsed.text):
            # The small model sometimes answers "[1] [2]" alone: say what those sources are.
            parsed = citations.parse(citations.titles_answer(parsed.citations), sources)
        abstained = is_abstention(raw) and not parsed.citations
        total_usage = Usage(usage.prompt_tokens + completion.usage.prompt_tokens,
                            usage.completion_tokens + completion.usage.completion_tokens)
        yield Answer(
            question=question, text=SENTINEL if abstained else parsed.text,
            citations=() if abstained else parsed.citations, sources=sources, abstained=abstained,
            model=completion.model if completion else model_name, usage=total_usage, query=query,
            dropped_citations=parsed.dropped,
            timings=Timings(retrieval_s, first_token_s, time.perf_counter() - start),
        )

    def llm_model_name(self) -> str:
        return self.settings.model_name

    def relevant(self, query: str, hits: list[Hit]) -> list[Hit]:
        """The hits worth showing the model; [] means abstain (decided by relevance.assess)."""
        from .relevance import assess

        return assess(query, hits, self.retriever.bm25, self.settings).kept

    def select(self, query: str, hits: list[Hit], question: str, turns: list[Turn]):
        """Numbered sources trimmed to what the context window leaves after everything else."""
        s = self.settings
        fixed = (self.count_tokens(self.system_prompt()) + self.count_tokens(question)
                 + self.count_tokens(prompts.render("answer", history="", sources="", question=""))
                 + self.count_tokens(self.history_block(turns)) + TEMPLATE_OVERHEAD)
        budget = min(MAX_SOURCE_TOKENS, s.effective_context_window - s.max_answer_tokens - fixed)
        bm25 = self.retriever.bm25
        abstracts = {}
        for h in hits:
            paper = self.store.paper(h.paper_id)
            if paper is not None:
                abstracts[h.paper_id] = paper.abstract
        return select_sources(hits, abstracts, max(budget, 0), self.count_tokens,
                              lambda sent: bm25.coverage(query, sent))

    def system_prompt(self) -> str:
        return prompts.render("system", sentinel=SENTINEL_TOKEN)

    def history_block(self, turns: list[Turn]) -> str:
        """The last turns, as context only (their citation numbers are stripped: they are stale)."""
        lines = _turn_lines(turns[-3:], ANSWER_HISTORY_CHARS)
        while lines and self.count_tokens("\n".join(lines)) > HISTORY_TOKENS:
            lines.pop(0)
        if not lines:
            return ""
        return "Earlier conversation (context only):\n" + "\n".join(lines) + "\n\n"

    def messages(self, question: str, sources, turns: list[Turn]) -> list[dict[str, str]]:
        user = prompts.render("answer", history=self.history_block(turns),
                              sources=render_sources(sources), question=question)
        return [{"role": "system", "content": self.system_prompt()},
                {"role": "user", "content": user}]

    def condense(self, question: str, turns: list[Turn], model: str | None) -> tuple[str, Usage]:
        """Rewrite a follow-up into a standalone query using the earlier turns."""
        history = "\n".join(_turn_lines(turns[-3:], 300))
        prompt = prompts.render("condense", history=history, question=question)
        completion = self.llm.complete([{"role": "user", "content": prompt}], max_tokens=60, model=model)
        query = completion.text.strip().splitlines()[0].strip().strip('"') if completion.text.strip() else ""
        return (query or question), completion.usage
