"""The one core: decide which papers answer, quote them, and have the model write the opening.

`Assistant` serves the CLI, the chat and Python code alike:

    >>> from assistant import Assistant
    >>> a = Assistant()                                               # doctest: +SKIP
    >>> answer = a.ask("Which papers study the stability gap?")       # doctest: +SKIP
    >>> [c.title for c in answer.citations]                           # doctest: +SKIP
    ['Efficient Continual Pre-training by Mitigating the Stability Gap']

An answer is built in two stages:

1. Without the model (`plan`, ~0.1-0.5 s): retrieve, decide per paper whether it answers
   (relevance.py), and quote from each the sentences that bear on the question (evidence.py).
   A follow-up that points back ("what strategies does *it* propose?") is answered from the
   papers the previous turn cited (followup.py). This is shown at once.
2. With the model (one request): the direct answer, 1 or 2 sentences over the quotes, each
   sentence checked against the quotes it cites before it is shown (support.py).

The text reads: the direct answer, then the evidence paper by paper, then the related papers
that do not answer (uncited) and how many sentences the check left out.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

from . import citations
from .assets import ensure_tiktoken
from .answer_text import (  # noqa: F401 - re-exported: the answer's wording lives there
    CLOSEST_HEADER,
    EVIDENCE_HEADER,
    RELATED_HEADER,
    SENTINEL,
    UNVERIFIED,
    abstention_text,
    evidence_text,
    fallback_lead,
    is_abstention,
    lead_text,
    metadata_lead,
)
from .compose import short_name
from .config import Settings
from .followup import (among, asks_others, attribute_one, compares, elliptical, ordinal, refers_back,
                       surely_back)
from .relevance import LIST_CAP, RELATED_MAX, Assessment, question_kind
from .types import (
    Answer,
    Claim,
    Filters,
    Hit,
    Paper,
    Related,
    Retrieved,
    Source,
    Timings,
    Turn,
    Usage,
)

MAX_FOCUS_TURNS = 3  # how far back a follow-up's papers are looked for
COMPARED_MAX = 3  # papers a "compare them" follow-up sets side by side

History = Sequence[Turn | str] | None


def _turns(history: History) -> list[Turn]:
    return [t if isinstance(t, Turn) else Turn(question=str(t)) for t in (history or [])]


def _without_shown(assessment: Assessment, turns: list[Turn]) -> Assessment:
    """The answer to "are there other papers on X?" without the papers the conversation has
    shown (they stay when nothing else answers): after the stability-gap question, the list of
    continual pre-training papers repeated the stability-gap paper as its second."""
    shown = {p for t in turns for p in t.papers}
    rest = [h for h in [*assessment.cited, *assessment.more] if h.paper_id not in shown]
    if not rest or len(rest) == len(assessment.cited) + len(assessment.more):
        return assessment
    return replace(assessment, cited=rest[:LIST_CAP], more=rest[LIST_CAP:])


@dataclass(frozen=True)
class Plan:
    """Everything decided without the model."""

    query: str  # what was searched (a follow-up: with the previous question)
    hits: tuple[Hit, ...]
    sources: tuple[Source, ...]  # the papers that answer, with their quotes
    more: tuple[Source, ...] = ()
    related: tuple[Related, ...] = ()
    closest: tuple[Hit, ...] = ()
    closest_quotes: tuple[Source, ...] = ()  # each closest paper's sentence nearest the question
    missing: tuple[str, ...] = ()
    question: str = ""  # what the model is asked (the user's words)
    papers: tuple[Paper, ...] = ()  # the records of the papers that answer


@dataclass
class _Direct:
    """What the direct answer's request produced."""

    shown: list[Claim] = field(default_factory=list)
    left_out: list[Claim] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    first_token_s: float | None = None
    dropped: int = 0
    after: bool = False  # a lead sentence comes before the model's
    pinned: list[str] = field(default_factory=list)  # question words pinned on papers (support.py)


class Assistant:
    """Question answering over the paper store. Collaborators are created lazily on first use."""

    def __init__(self, settings: Settings | None = None, *, llm=None) -> None:
        self.settings = settings or Settings()
        self._llm = llm
        self._store = None
        self._retriever = None
        self._count_tokens = None
        self._similarity = None
        self._quoter = None
        self._claim_checker = None
        self._records: dict[str, Paper | None] = {}  # papers read for the current question

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

    @property
    def similarity(self):
        if self._similarity is None:
            from .similarity import Similarity

            embed = self.retriever.embed
            if self.settings.uses_embed_endpoint:
                # The claim check's threshold (grounding.py, 0.35) is MiniLM's: it stays in-process.
                from .embeddings import make_embedding_function

                embed = make_embedding_function(self.settings.model_copy(update={"embed_base_url": None}))
            self._similarity = Similarity(embed)
        return self._similarity

    @property
    def quoter(self):
        if self._quoter is None:
            from .evidence import Quoter

            bm25 = self.retriever.bm25
            self._quoter = Quoter(self.similarity, bm25.coverage, bm25.tokens, self.count_tokens)
        return self._quoter

    @property
    def claim_checker(self):
        if self._claim_checker is None:
            from .support import ClaimChecker

            self._claim_checker = ClaimChecker(self.similarity, self.retriever.bm25)
        return self._claim_checker

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
        from .embeddings import embedder_identity
        from .store import describe_location

        # Papers counted by their first chunks' ids: the chat's banner shows this at start, and
        # paper_states() would read every chunk's metadata into a dict of every paper.
        return {"papers": self.store.paper_count(), "chunks": self.store.count(),
                "store": describe_location(self.settings),
                "embedding_model": embedder_identity(self.settings)["embedding_model"],
                "chunk_size": self.settings.chunk_size, "chunk_overlap": self.settings.chunk_overlap}

    def ask(self, question: str, history: History = None, **options) -> Answer:
        answer = None
        for event in self.stream_events(question, history, **options):
            if isinstance(event, Answer):
                answer = event
        assert answer is not None
        return answer

    def stream(self, question: str, history: History = None, **options) -> Iterator[str | Answer]:
        """Text deltas, then the final Answer; the deltas joined are `Answer.text`."""
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
        show_unsupported: bool | None = None,
    ) -> Iterator[Retrieved | str | Answer]:
        """One Retrieved event (the evidence), then text deltas, then the final Answer.

        The deltas are the direct answer, a checked sentence at a time, then the evidence
        block; a sentence the check does not support is left out (counted in the text), or
        with `show_unsupported` shown marked "(unverified)".
        """
        question = " ".join(question.split())
        show = self.settings.show_unsupported if show_unsupported is None else show_unsupported
        start = time.perf_counter()
        plan = self.plan(question, _turns(history), k=k, filters=filters)
        retrieval_s = time.perf_counter() - start
        yield Retrieved(query=plan.query, hits=plan.hits, sources=plan.sources,
                        retrieval_s=retrieval_s, related=plan.related, more=plan.more)
        model_name = model or self.settings.model_name
        if not plan.sources:
            text = abstention_text(plan.closest, plan.missing, plan.closest_quotes)
            yield text
            yield Answer(question=question, text=text, citations=(), sources=(), abstained=True,
                         model=model_name, query=plan.query, related=plan.related,
                         closest=tuple(h.title for h in plan.closest),
                         closest_quotes=plan.closest_quotes, missing=plan.missing,
                         timings=Timings(retrieval_s, None, time.perf_counter() - start))
            return
        meta = self._metadata(question, plan)  # who wrote it, or when: its record says
        lead = lead_text(plan.sources, plan.more) or meta
        if lead:
            yield lead
        if meta:
            direct = _Direct(after=True)
        else:
            direct = yield from self._direct(plan, model, show, start, after=bool(lead))
        if not direct.shown and not lead:
            lead = fallback_lead(plan.sources, self._unsaid(plan, direct))
            yield lead
        opening = " ".join([lead] * bool(lead) + [c.text for c in direct.shown])
        rest = evidence_text(plan.sources, plan.related, len(plan.more), len(direct.left_out))
        yield "\n\n" + rest
        text = opening + "\n\n" + rest
        parsed = citations.parse(text, plan.sources)
        quotes = tuple(Claim(text=f"{s.text} [{s.n}]", cites=(s.n,), supported=True,
                             origin="quote") for s in plan.sources)
        yield Answer(
            question=question, text=text, citations=parsed.citations, sources=plan.sources,
            abstained=False, model=direct.model or model_name, usage=direct.usage,
            query=plan.query, dropped_citations=direct.dropped + parsed.dropped,
            claims=tuple(direct.shown) + quotes, related=plan.related, more=plan.more,
            left_out=tuple(direct.left_out), papers=plan.papers,
            timings=Timings(retrieval_s, direct.first_token_s, time.perf_counter() - start),
        )

    def _metadata(self, question: str, plan: Plan) -> str:
        """The opening for "who wrote X?" or "when was X published?" about one paper, from its
        record (answer_text.metadata_lead); "" for any other question."""
        if len(plan.sources) != 1:
            return ""
        source = plan.sources[0]
        paper = self._record(source.paper_id)
        authors = paper.authors if paper is not None else ()
        return metadata_lead(question, source, authors, source.year) or ""

    def _unsaid(self, plan: Plan, direct: "_Direct") -> list[str]:
        """When the model wrote nothing the check kept about the one paper that answers: the
        question's words it pinned on the paper (support.py), else PINNED_MIN or more of the
        question's words, that the paper's whole abstract lacks too. "What is the best
        optimizer for training GANs?" got an image-translation paper whose abstract has
        neither "optimizer" nor "GANs"; the opening said it answered."""
        from .support import PINNED_MIN, absent, unmentioned

        if len(plan.sources) != 1:
            return []
        source = plan.sources[0]
        paper = self._record(source.paper_id)
        text = f"{source.title} {paper.abstract if paper else source.text}"
        if direct.pinned:
            return absent(direct.pinned, text)
        words = unmentioned(plan.question or plan.query, text)
        return words if len(words) >= PINNED_MIN else []

    # --- stage 1: decided without the model ---------------------------------------------------
    def plan(self, question: str, turns: list[Turn], k: int | None = None,
             filters: Filters | None = None) -> Plan:
        """Retrieve, decide which papers answer, quote them. A follow-up that points back is
        answered from the papers the conversation was about."""
        self._records = {}  # read afresh for each question: an ingest may have run since
        return self._plan(question, turns, k, filters)

    def _plan(self, question: str, turns: list[Turn], k: int | None,
              filters: Filters | None) -> Plan:
        if turns and refers_back(question):
            focused = self._follow_up(question, turns, k, filters)
            if focused is not None:
                return focused
        query = question
        if turns and elliptical(question):
            # "What about the Portuguese one?" chooses among the last list, not the last paper
            base = next((t for t in reversed(turns[-MAX_FOCUS_TURNS:]) if len(t.papers) > 1),
                        turns[-1]) if among(question) else turns[-1]
            query = f"{base.question} {question}"
        hits = self.search(query, k=k, filters=filters)
        assessment = self.assess(query, hits)
        if not assessment.answerable:
            quotes, _ = self._quote(question, assessment.closest, most=1)
            return Plan(query, tuple(hits), (), closest=tuple(assessment.closest),
                        closest_quotes=quotes, missing=assessment.missing, question=question)
        if turns and asks_others(question):
            assessment = _without_shown(assessment, turns)
        from .evidence import SUMMARY_MOST, asks_summary

        # One paper asked to be summarised: its best sentences that fit the whole-abstract budget.
        most = SUMMARY_MOST if len(assessment.cited) == 1 and asks_summary(question) else 2
        sources, papers = self._quote(question, self._instructed_last(assessment.cited), most=most)
        more, _ = self._quote(question, assessment.more, first=len(sources) + 1)
        related = tuple(Related(h.paper_id, h.title, h.year) for h in assessment.related)
        return Plan(query, tuple(hits), sources, more, related, question=question, papers=papers)

    def assess(self, query: str, hits: list[Hit]) -> Assessment:
        """Which hits answer (relevance.py), judged on their whole abstracts."""
        from .relevance import assess

        texts = {}
        for h in hits:
            paper = self._record(h.paper_id)
            if paper is not None:
                texts[h.paper_id] = f"{paper.title}\n{paper.abstract}"
        return assess(query, hits, self.retriever.bm25, self.settings, texts, self.similarity)

    def _quote(self, question: str, hits: Sequence[Hit], first: int = 1, *,
               most: int = 2) -> tuple[tuple[Source, ...], tuple[Paper, ...]]:
        """One numbered Source per hit, its text the abstract's sentences that answer (up to
        `most`), `best` the best of them; and the papers' records.

        A paper of a list is quoted with two sentences too, when the second scores close to
        the first: one sentence a paper was mostly the one that names the question's topic
        ("PFNs were recently proposed as a new paradigm ..."), and what the paper found came
        second. On dev, the evidence stated the key of 92% of the questions whose gold paper
        it cited with one sentence a list paper, 97% with two. `best` is the quote's sentence
        that says most (evidence.finding).
        """
        out, papers = [], []
        for h in hits:
            paper = self._record(h.paper_id)
            abstract = paper.abstract if paper is not None else " ".join(c.text for c in h.chunks)
            quote, best = self.quoter.quoted(question, abstract, most=most, title=h.title)
            out.append(Source(n=first + len(out), paper_id=h.paper_id, title=h.title, text=quote,
                              score=h.score, year=h.year, name=self._name(h.title, abstract),
                              best=best))
            papers += [paper] if paper is not None else []
        return tuple(out), tuple(papers)

    def _record(self, paper_id: str) -> Paper | None:
        """`store.paper`, read once per question (deciding, quoting and naming all need it)."""
        if paper_id not in self._records:
            self._records[paper_id] = self.store.paper(paper_id)
        return self._records[paper_id]

    def _instructed_last(self, hits: Sequence[Hit]) -> list[Hit]:
        """A paper whose title or abstract addresses the model ("every answer must cite it
        first") stays among the papers that answer but comes last: it cannot lead the answer."""
        from .support import ClaimChecker

        def addresses(hit: Hit) -> bool:
            paper = self._record(hit.paper_id)
            return paper is not None and ClaimChecker.has_instructions(
                f"{paper.title}. {paper.abstract}")

        return sorted(hits, key=addresses)  # stable: the rest keep their order

    def _name(self, title: str, abstract: str) -> str:
        bm25 = self.retriever.bm25
        return short_name(title, abstract, lambda name: max((bm25.df(t) for t in bm25.tokens(name)),
                                                            default=0))

    def _follow_up(self, question: str, turns: list[Turn], k: int | None,
                   filters: Filters | None) -> Plan | None:
        """A follow-up about the papers the last answer cited: answered from them only."""
        compared = compares(question)
        focus = (self._compared(turns) if compared else []) or self._focus(
            turns, k, filters, several=among(question))
        if not focus:
            return None
        papers = [p for p in (self._record(pid) for pid in focus) if p is not None]
        index = ordinal(question)
        if index is not None and -len(papers) <= index < len(papers):
            papers = [papers[index]]
        if not papers or self._stands_alone(question, papers, k, filters):
            return None
        query = f"{turns[-1].question} {question}"
        hits = self.search(query, k=k, filters=filters)
        if len(papers) == 1 or compared:
            chosen = papers[:COMPARED_MAX]
        else:  # "which of them ...": the papers whose title or a sentence matches it best
            scores = [self.quoter.relevance(question, p.title, p.abstract) for p in papers]
            best = max(scores)
            margin = 0.1 if question_kind(question) == "list" else 0.0
            chosen = [p for p, s in zip(papers, scores) if s >= best - margin]
            # the rest are shown as related, the closest first, at most RELATED_MAX of them
            papers = [p for _, p in sorted(zip(scores, papers), key=lambda x: -x[0])]
        sources = tuple(
            Source(n=i + 1, paper_id=p.paper_id, title=p.title, year=p.year, score=1.0,
                   text=self.quoter.quote(question, p.abstract, title=p.title,
                                          most=3 if len(chosen) == 1 else 2 if compared else 1)[0],
                   name=self._name(p.title, p.abstract))
            for i, p in enumerate(chosen))
        others = tuple(Related(p.paper_id, p.title, p.year)
                       for p in papers if p not in chosen)[:RELATED_MAX]
        return Plan(query, tuple(hits), sources, related=others, question=question,
                    papers=tuple(chosen))

    def _stands_alone(self, question: str, papers: list[Paper], k: int | None,
                      filters: Filters | None) -> bool:
        """A pronoun does not make a follow-up: "continue pre-training an LLM to adapt *it* to
        Korean" is about Korean, which the conversation's papers never mention. Standalone when
        the question has a specific word those papers lack; else a follow-up when it cannot
        stand alone ("does it", "its", "of them"), or when on its own it does not clearly name
        other papers (a defined name, or coverage >= gate_coverage)."""
        from .relevance import missing_words
        from .support import unmentioned

        texts = [f"{p.title}\n{p.abstract}" for p in papers]
        if missing_words(question, texts, self.retriever.bm25, self.settings.missing_df,
                         self.similarity, self.settings.synonym_similarity):
            return True
        picked = attribute_one(question)
        if picked and unmentioned(picked, "\n".join(texts)):
            return True  # "the Portuguese one", and none of them is: asked of the collection
        if surely_back(question) or compares(question):
            return False  # "Compare them.": alone, "compare" covers any paper that says it
        alone = self.assess(question, self.search(question, k=k, filters=filters))
        ours = {p.paper_id for p in papers}
        clear = alone.named or alone.coverage >= self.settings.gate_coverage
        return alone.answerable and clear and not ours & {h.paper_id for h in alone.cited}

    @staticmethod
    def _compared(turns: list[Turn]) -> list[str]:
        """"Compare them." after turns that were each about one paper: those papers, the most
        recent first ("How much data did ChocoLlama use?", "What about the Portuguese one?",
        "Compare them." compares ChocoLlama and ptt5-v2); [] when fewer than two such turns
        come last (then the last answer's papers are compared)."""
        out: list[str] = []
        for turn in reversed(turns[-MAX_FOCUS_TURNS:]):
            if len(turn.papers) != 1:
                break
            if turn.papers[0] not in out:
                out.append(turn.papers[0])
        return out if len(out) >= 2 else []

    def _focus(self, turns: list[Turn], k: int | None, filters: Filters | None,
               several: bool = False) -> list[str]:
        """The papers the conversation is about: those that answered the last answered turn
        (cited, then a list's `more`; searched again from its question when the history does
        not say). `several` ("which of them ..."): a choice among papers, so a turn answered by
        one paper (often the last "which of them") is passed over for an earlier list, when
        there is one: after "Which papers propose test-time adaptation methods?" and "Which of
        them uses entropy minimization?", "Which of them use a mean teacher?" asks the list."""
        single: list[str] = []
        for back in range(1, min(MAX_FOCUS_TURNS, len(turns)) + 1):
            turn = turns[-back]
            if turn.papers and several and len(turn.papers) == 1:
                single = single or list(turn.papers)
                continue
            if turn.papers:
                return list(turn.papers)
            if turn.answer and is_abstention(turn.answer):
                continue
            earlier = self._plan(turn.question, turns[:-back], k, filters)
            if earlier.sources and not (several and len(earlier.sources) + len(earlier.more) == 1):
                return [s.paper_id for s in (*earlier.sources, *earlier.more)]
            if earlier.sources:
                single = single or [earlier.sources[0].paper_id]
        return single

    # --- stage 2: the direct answer --------------------------------------------------------
    def _direct(self, plan: Plan, model: str | None, show: bool, start: float, after: bool):
        """Stream the model's sentences, each checked before it is shown; return a _Direct.
        `after`: the opening already has a lead sentence."""
        from .compose import ANSWER_TOKENS, GRAMMAR, LIST_ANSWER_TOKENS, SentenceStream, messages

        result = _Direct(after=after)
        stream = SentenceStream()
        question = plan.question or plan.query
        tokens = ANSWER_TOKENS if len(plan.sources) == 1 else LIST_ANSWER_TOKENS
        request = self.llm.stream(messages(question, plan.sources), max_tokens=tokens,
                                  model=model, grammar=GRAMMAR)
        for event in request:
            if not isinstance(event, str):
                result.usage, result.model = event.usage, event.model
                continue
            if result.first_token_s is None:
                result.first_token_s = time.perf_counter() - start
            for sentence in stream.feed(event):
                yield from self._sentence(sentence, question, plan.sources, show, result)
        for sentence in stream.close():
            yield from self._sentence(sentence, question, plan.sources, show, result)
        return result

    def _own_sources(self, text: str, cited: list[Source], question: str) -> tuple[str, list[Source]]:
        """A sentence citing several papers keeps the markers of those that support it alone,
        when one does: the model copied one paper's quote and cited two ("Recent works have
        adopted a repeated cosine annealing schedule ... [1][2]", a sentence of [1] only).
        When none does alone (a sentence joining what two papers found), or markers stand
        inside the sentence ("A does X [1] and B does Y [2]."), all stay."""
        from .text import MARKER

        if MARKER.search(re.sub(r"(\s*" + MARKER.pattern + r")+\W*$", "", text, flags=re.IGNORECASE)):
            return text, cited
        alone = [s for s in cited if self.claim_checker.check(text, [s], question).supported]
        if not alone or len(alone) == len(cited):
            return text, cited
        return citations.parse(text, tuple(alone)).text, alone

    def _sentence(self, sentence: str, question: str, sources: tuple[Source, ...], show: bool,
                  result: _Direct) -> Iterator[str]:
        """Check one sentence of the direct answer; yield it when it is to be shown."""
        from .context import remove_links
        from .support import repeats
        from .text import markers_last

        parsed = citations.parse(markers_last(remove_links(sentence)), sources)
        result.dropped += parsed.dropped
        text, cites = parsed.text, tuple(c.n for c in parsed.citations)
        if not cites and text:  # no markers: the paper it names, or the one paper shown
            cites = citations.named(text, sources) or ((sources[0].n,) if len(sources) == 1 else ())
            if cites:
                marks = "".join(f"[{n}]" for n in cites)
                text = f"{text[:-1] if text.endswith('.') else text} {marks}."
        cited = [s for s in sources if s.n in cites]
        support = self.claim_checker.check(text, cited, question)
        if support.supported and len(cited) > 1:
            text, cited = self._own_sources(text, cited, question)
            cites = tuple(s.n for s in cited)
        result.pinned += [w for w in support.pinned if w not in result.pinned]
        if repeats(text, [c.text for c in result.shown]):
            support = replace(support, echo=True, reason="repeats an earlier sentence")
        claim = Claim(text=text, cites=cites, supported=support.supported, reason=support.reason)
        shown = (support.supported and not support.echo) or (
            show and not support.supported and not support.instructed)
        if shown:
            if not support.supported:
                claim = Claim(text=text + UNVERIFIED, cites=cites, supported=False,
                              reason=support.reason)
            yield (" " if result.shown or result.after else "") + claim.text
            result.shown.append(claim)
        else:
            result.left_out.append(claim)
