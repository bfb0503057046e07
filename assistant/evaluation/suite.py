"""Run the eval suite: ask every question (recorded or replayed), score, aggregate.

`run_suite(settings, record=False)` returns an `EvalReport`; nothing here prints. Each question
has its own cassette `evals/cassettes/<id>.yaml` holding the answer's LLM calls (the condense
call of a follow-up, the answer) and the judge's two calls. `evals/cassettes/manifest.json`
stores, per question, a fingerprint of everything that shapes those calls: the prompt files'
text, the model name, the context window and the question with its history. Replaying, a
fingerprint that differs, a missing cassette, a request that is not in the cassette or a
recorded call left unplayed raise `StaleRecordingsError` (one line saying how to re-record).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assistant.config import LOCAL_MODEL, Settings
from assistant.errors import PapersError

from . import metrics as M
from .faithfulness import (
    SIMILARITY_THRESHOLD,
    Check,
    CitedText,
    DeterministicScorer,
    Statement,
    split_statements,
    strip_markers,
)
from .judge import Judge
from .questions import KINDS, SPLITS, Question, load_questions

REPLAY_BASE_URL = "http://127.0.0.1:9/v1"  # nothing listens: an unrecorded call fails at once
RETRIEVAL_DEPTH = 10
RERECORD = "papers eval --record"
MANIFEST = "manifest.json"
DEFAULT_MINUTES_PER_QUESTION = 1.5
MAX_ERRORS_IN_A_ROW = 3  # recording: this many failing questions in a row stop the run

Progress = Callable[[int, int, str], None]  # (done, total, question id)


class StaleRecordingsError(PapersError):
    """The recorded responses no longer fit the prompts, model or code: re-record them."""


def default_evals_dir() -> Path:
    """`./evals` when run from a checkout, else the one beside the installed package."""
    here = Path.cwd() / "evals"
    if (here / "questions.jsonl").is_file():
        return here
    return Path(__file__).resolve().parents[2] / "evals"


# --------------------------------------------------------------------------- fingerprints


def prompt_texts() -> dict[str, str]:
    """Every prompt file's text, by name (the folder `assistant.prompts` reads from)."""
    from assistant.prompts import PROMPT_DIRS

    for folder in PROMPT_DIRS:
        files = sorted(folder.glob("*.txt")) if folder.is_dir() else []
        if files:
            return {f.stem: f.read_text(encoding="utf-8") for f in files}
    return {}


# Settings that shape the requests (chunking, retrieval, the gate, answer shape, sampling): the
# suite runs with their declared defaults whatever the environment says, so a developer's
# PAPERS_K does not make the recordings look stale; all but where things live and how to reach
# them, which never change a request body.
_ENVIRONMENT_SETTINGS = {
    "store_dir", "chroma_url", "chroma_token", "collection", "cache_dir", "embed_batch_size",
    "llm_base_url", "llm_model", "llm_api_key", "llm_timeout", "llm_max_retries",
    "llm_grammar", "local_threads", "local_ctx", "local_parallel", "local_start_timeout",
    # The suite always embeds with MiniLM (evals/embeddings.npz; eval_settings unsets the URL).
    "embed_base_url", "embed_model", "embed_api_key", "embed_concurrency", "embed_attempts",
    "embed_timeout",
}
PINNED_SETTINGS = tuple(name for name in Settings.model_fields if name not in _ENVIRONMENT_SETTINGS)


def pinned_settings() -> dict[str, Any]:
    fields = Settings.model_fields
    return {name: fields[name].default for name in PINNED_SETTINGS if name in fields}


def fingerprint(question: Question, model: str, prompts: dict[str, str] | None = None) -> str:
    payload = {
        "prompts": prompts if prompts is not None else prompt_texts(),
        "model": model,
        "settings": pinned_settings(),
        "question": question.question,
        "history": list(question.history),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()[:20]


def eval_settings(settings: Settings, record: bool) -> Settings:
    """The settings the suite runs with: the same request bodies in record and replay."""
    update: dict[str, Any] = {
        **pinned_settings(),
        "llm_model": settings.llm_model or LOCAL_MODEL,
        # Recorded from the embedded model, which takes the answer lines' grammar.
        "llm_grammar": True,
        "embed_base_url": None,  # its vectors and gates are MiniLM's
    }
    if not record:
        update.update(llm_base_url=REPLAY_BASE_URL, llm_api_key=None, llm_max_retries=0)
    return settings.model_copy(update=update)


def _minutes(manifest: dict, n: int) -> int:
    seconds = [q.get("seconds", 0) for q in manifest.get("questions", {}).values()]
    per = (sum(seconds) / len(seconds) / 60) if seconds else DEFAULT_MINUTES_PER_QUESTION
    return max(1, round(per * n))


def stale_message(manifest: dict, n: int, detail: str = "") -> str:
    line = (f"recordings are stale (prompt or model changed): re-record with `{RERECORD}` "
            f"(needs the local model, ~{_minutes(manifest, n)} min)")
    return f"{line}; {detail}" if detail else line


def unmatched_message(manifest: dict, ids: Sequence[str], n: int) -> str:
    """One line naming the questions whose requests were not recorded, so they can be re-recorded
    with -q alone: the fingerprint does not cover retrieval, so a change to it goes unseen until
    a question's prompt differs (a list of one id at a time made that a loop of replays)."""
    shown = " ".join(f"-q {i}" for i in ids[:12]) + (f" (and {len(ids) - 12} more)" if len(ids) > 12 else "")
    return (f"recordings are stale: {len(ids)} of {n} questions now send requests that were not "
            f"recorded (retrieval or the answer's inputs changed): re-record them with "
            f"`{RERECORD} {shown}` (needs the local model, ~{_minutes(manifest, len(ids))} min)")


def _is_unmatched(exc: BaseException) -> bool:
    from vcr.errors import CannotOverwriteExistingCassetteException

    from assistant.recording import RecordingError

    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, (CannotOverwriteExistingCassetteException, RecordingError)):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


# --------------------------------------------------------------------------- results


@dataclass
class StatementResult:
    text: str
    cites: tuple[int, ...]
    check: Check

    def to_dict(self) -> dict:
        return {"text": self.text, "cites": list(self.cites), **self.check.to_dict()}


@dataclass
class ClaimResult:
    """One line of the answer as the run-time check (`Answer.claims`) judged it."""

    text: str
    cites: tuple[int, ...]
    origin: str  # "generated", "model" or "attributed"
    supported: bool
    reason: str = ""

    def to_dict(self) -> dict:
        return {**asdict(self), "cites": list(self.cites)}


@dataclass
class CitationResult:
    """One citation of one line: where it came from, whether it names a right paper, and the
    deterministic scorer's verdict on the line against the very text that source showed the
    model (`Citation.quote`), no other source."""

    text: str  # the line (or statement) as written
    n: int
    title: str
    origin: str
    correct_paper: bool  # gold or acceptable
    check: Check

    def to_dict(self) -> dict:
        return {"text": self.text, "n": self.n, "title": self.title, "origin": self.origin,
                "correct_paper": self.correct_paper, **self.check.to_dict()}


ORIGINS = ("answer", "quote")


@dataclass
class QuestionResult:
    id: str
    kind: str
    question: str
    history: tuple[str, ...]
    gold: tuple[str, ...]
    acceptable: tuple[str, ...]
    expected: tuple[str, ...]
    query: str
    answer: str
    abstained: bool
    cited: list[str]
    retrieved: list[str]
    sources_shown: int
    recall_at_5: float | None
    recall_at_10: float | None
    reciprocal_rank: float | None
    citation_precision: float | None
    citation_recall: float | None
    fact_correct: bool | None
    abstention_correct: bool
    statements: list[StatementResult] = field(default_factory=list)
    faithfulness: float | None = None
    judge_statements: list[dict] = field(default_factory=list)
    faithfulness_judge: float | None = None
    judge_unparsed: int = 0
    seconds: float = 0.0
    split: str = "dev"
    tags: tuple[str, ...] = ()
    correct: bool = False  # the headline: see metrics.headline_misses
    misses: list[str] = field(default_factory=list)
    substantive: bool | None = None  # None: abstain question
    claims: list[ClaimResult] = field(default_factory=list)  # the run-time check
    faithfulness_runtime: float | None = None  # supported claims / claims
    citation_checks: list[CitationResult] = field(default_factory=list)
    error: str = ""  # recording only: the question raised this; it counts as a miss
    key: bool | None = None  # the answer states the key (None: abstain question)
    echoes: int = 0  # statements that restate the question
    extra_citation: bool | None = None  # single-paper question citing outside gold+acceptable
    list_recall: float | None = None  # "which papers" questions
    left_out: int = 0  # direct-answer sentences the run-time check left out
    closest: list[str] = field(default_factory=list)  # abstaining: the titles offered, quoted

    @property
    def gold_shown_abstaining(self) -> bool | None:
        """An answerable question abstained on, but its gold paper is among the closest shown
        (with its nearest sentence quoted): the reader still finds it. None otherwise."""
        if self.kind == "abstain" or not self.abstained:
            return None
        return any(M.title_ok(t, self.gold) for t in self.closest)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["statements"] = [s.to_dict() for s in self.statements]
        d["claims"] = [c.to_dict() for c in self.claims]
        d["citation_checks"] = [c.to_dict() for c in self.citation_checks]
        for key in ("history", "gold", "acceptable", "expected", "tags"):
            d[key] = list(d[key])
        d["seconds"] = round(self.seconds, 2)
        return d


def _pooled_rate(count: int, total: int) -> float | None:
    return round(count / total, 4) if total else None


def _pooled(flags: Sequence[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def _unsupported(flags: Sequence[bool]) -> float | None:
    return round(1 - sum(flags) / len(flags), 4) if flags else None


def summarize(rs: Sequence[QuestionResult]) -> dict[str, Any]:
    """Every metric over `rs` (the same keys whatever `rs` holds: thresholds can rely on them)."""
    answerable = [r for r in rs if r.kind != "abstain"]
    abstain = [r for r in rs if r.kind == "abstain"]
    statements = [s for r in rs for s in r.statements]
    judged = [j for r in rs for j in r.judge_statements]
    claims = [c for r in rs for c in r.claims]
    checks = [c for r in rs for c in r.citation_checks]
    by_origin = {}
    for origin in ORIGINS:
        mine = [c for c in checks if c.origin == origin]
        by_origin[origin] = {
            "count": len(mine),
            "precision": _pooled([c.correct_paper for c in mine]),
            "supported": _pooled([c.check.supported for c in mine]),
        }
    return {
        "questions": len(rs),
        "headline": M.mean_of(r.correct for r in rs),
        "substantive": M.mean_of(r.substantive for r in rs),
        "misses": {reason: sum(reason in r.misses for r in rs) for reason in M.MISS_REASONS},
        "errors": sum(bool(r.error) for r in rs),
        "retrieval": {
            "recall@5": M.mean_of(r.recall_at_5 for r in rs),
            "recall@10": M.mean_of(r.recall_at_10 for r in rs),
            "mrr": M.mean_of(r.reciprocal_rank for r in rs),
            "questions": len(answerable),
        },
        "citations": {
            "precision": M.mean_of(r.citation_precision for r in rs),
            "recall": M.mean_of(r.citation_recall for r in rs),
            "questions_citing": sum(r.citation_precision is not None for r in rs),
            "by_origin": by_origin,
        },
        "facts": {
            "accuracy": M.mean_of(r.fact_correct for r in rs),
            "questions": sum(r.fact_correct is not None for r in rs),
        },
        "abstention": {
            "accuracy": M.mean_of(r.abstention_correct for r in rs),
            "abstain_recall": M.mean_of(r.abstention_correct for r in abstain),
            "false_abstention_rate": M.mean_of(r.abstained for r in answerable),
            # of those false abstentions, the share whose gold paper is among the closest shown
            "gold_shown_abstaining": M.mean_of(r.gold_shown_abstaining for r in answerable),
            "near_miss_recall": M.mean_of(r.abstention_correct for r in abstain
                                          if "near_miss" in r.tags),
            "abstain_questions": len(abstain),
        },
        "key_recall": M.mean_of(r.key for r in rs),
        "echo_rate": _pooled_rate(sum(r.echoes for r in rs), len(statements)),
        "extra_citation_rate": M.mean_of(r.extra_citation for r in rs),
        "list_recall": M.mean_of(r.list_recall for r in rs),
        "faithfulness": M.mean_of(r.faithfulness for r in rs),
        # The judge is the answering model grading its own answers: a weak second opinion.
        "faithfulness_judge": M.mean_of(r.faithfulness_judge for r in rs),
        "faithfulness_runtime": M.mean_of(r.faithfulness_runtime for r in rs),
        "statements": {
            "total": len(statements),
            "direct": sum(c.origin == "answer" for c in claims),
            "left_out": sum(r.left_out for r in rs),
            "supported": sum(s.check.supported for s in statements),
            "judge_total": len(judged),
            "judge_supported": sum(bool(j.get("supported")) for j in judged),
            "runtime_total": len(claims),
            "runtime_supported": sum(c.supported for c in claims),
        },
        # statement-level (pooled) unsupported rates of the three checks, side by side
        "unsupported": {
            "runtime": _unsupported([c.supported for c in claims]),
            "deterministic": _unsupported([s.check.supported for s in statements]),
            "judge": _unsupported([bool(j.get("supported")) for j in judged]),
        },
    }


def _with_kinds(rs: Sequence[QuestionResult]) -> dict[str, Any]:
    out = summarize(rs)
    out["by_kind"] = {kind: summarize([r for r in rs if r.kind == kind])
                      for kind in KINDS if any(r.kind == kind for r in rs)}
    return out


@dataclass
class EvalReport:
    results: list[QuestionResult]
    model: str
    mode: str  # "replay" or "record"
    seconds: float
    similarity_threshold: float = SIMILARITY_THRESHOLD
    embedded_live: int = 0  # texts not found in evals/embeddings.npz

    def summary(self, results: Sequence[QuestionResult] | None = None) -> dict[str, Any]:
        return summarize(list(self.results if results is None else results))

    @property
    def errors(self) -> list[QuestionResult]:
        return [r for r in self.results if r.error]

    def to_dict(self) -> dict[str, Any]:
        """Overall, `by_kind.<kind>`, `by_split.<split>` and `by_split.<split>.by_kind.<kind>`,
        then every question's result and the run's meta data."""
        out = _with_kinds(self.results)
        out["by_split"] = {split: _with_kinds([r for r in self.results if r.split == split])
                           for split in SPLITS if any(r.split == split for r in self.results)}
        out["results"] = [r.to_dict() for r in self.results]
        out["meta"] = {"model": self.model, "mode": self.mode, "seconds": round(self.seconds, 1),
                       "similarity_threshold": self.similarity_threshold,
                       "embedded_live": self.embedded_live}
        return out


# --------------------------------------------------------------------------- the run


def _cited_texts(answer) -> dict[int, CitedText]:
    """What each cited paper showed the model: its quote, under its title and short name."""
    names = {s.n: s.name for s in answer.sources if getattr(s, "name", "")}
    return {c.n: CitedText(c.n, f"{names[c.n]} {c.title}" if c.n in names else c.title, c.quote)
            for c in answer.citations}


def _citation_checks(q: Question, answer, scorer: DeterministicScorer
                     ) -> tuple[list[ClaimResult], list[CitationResult]]:
    """The run-time verdicts of `Answer.claims`, and every (line, citation) pair scored against
    that citation's own source text. An answer without claims (written before per-line
    claims) has only the model's markers: its statements stand in for lines."""
    if answer.abstained:
        return [], []
    by_n = {c.n: c for c in answer.citations}
    claims = [ClaimResult(c.text, tuple(c.cites), c.origin, c.supported, c.reason)
              for c in answer.claims]
    lines = [(c.text, c.cites, c.origin) for c in claims] or [
        (st.text, st.cites, "answer") for st in split_statements(M.strip_line_notes(answer.text))]
    checks = []
    for text, cites, origin in lines:
        plain = strip_markers(M.strip_line_notes(text))
        for n in cites:
            c = by_n.get(n)
            if c is None:  # a marker that named no source: already dropped from the answer
                continue
            checks.append(CitationResult(
                text, n, c.title, origin, M.title_ok(c.title, q.gold, q.acceptable),
                scorer.check(plain, [CitedText(c.n, c.title, c.quote)])))
    return claims, checks


def _statements(answer) -> list[tuple[str, tuple[int, ...]]]:
    """What the answer claims: its direct sentences and quotes (`Answer.claims`), the run-time
    " (unverified)" notes aside; an answer without claims is split into sentences."""
    if answer.abstained:
        return []
    if answer.claims:
        return [(strip_markers(M.strip_line_notes(c.text)), tuple(c.cites)) for c in answer.claims]
    return [(st.text, st.cites) for st in split_statements(M.strip_line_notes(answer.text))]


def score_question(q: Question, answer, retrieved: list[str], scorer: DeterministicScorer,
                   judge_result=None, shown_k: int = 5) -> QuestionResult:
    """Everything measured on one answered question (pure given its inputs)."""
    cited = [c.title for c in answer.citations]
    sources = _cited_texts(answer)
    statements = [StatementResult(text, cites, scorer.check(text, [sources[n] for n in cites
                                                                   if n in sources]))
                  for text, cites in _statements(answer)]
    judged: list[dict] = []
    if judge_result is not None:
        judged = [{"text": s.text, "cites": list(s.cites), "supported": v}
                  for s, v in zip(judge_result.statements, judge_result.verdicts)]
    shown = len(answer.sources) or shown_k
    titles = [*cited, *(s.title for s in answer.sources), *(s.title for s in answer.more),
              *(r.title for r in getattr(answer, "related", ()))]
    names = [s.name for s in answer.sources if getattr(s, "name", "")]
    asked = " ".join([*q.history, q.question])
    echoes = sum(M.is_echo(st.text, asked, titles + names) for st in statements)
    substantive = (None if not q.answerable else
                   not answer.abstained and bool(statements) and not echoes
                   and M.substantive(answer.text, titles, answer.abstained, q.answerable))
    key = M.states_key(answer.text, q.key, titles) if q.answerable else None
    if q.answerable and answer.abstained:
        key = False
    extra = M.extra_citation(cited, q.gold, q.acceptable, q.single_paper)
    misses = M.headline_misses(
        answerable=q.answerable, abstained=answer.abstained, cited=cited, gold=q.gold,
        expected=q.expected, answer=answer.text,
        supported=[s.check.supported for s in statements], substantive=substantive,
        key=key if q.key else None, echoes=echoes, extra=extra)
    claims, checks = _citation_checks(q, answer, scorer)
    return QuestionResult(
        id=q.id, kind=q.kind, question=q.question, history=q.history, gold=q.gold,
        acceptable=q.acceptable, expected=q.expected, query=answer.query or q.question,
        answer=answer.text, abstained=answer.abstained, cited=cited, retrieved=retrieved,
        sources_shown=len(answer.sources),
        recall_at_5=M.recall_at_k(retrieved, q.gold, 5),
        recall_at_10=M.recall_at_k(retrieved, q.gold, 10),
        reciprocal_rank=M.reciprocal_rank(retrieved, q.gold, RETRIEVAL_DEPTH),
        citation_precision=M.citation_precision(cited, q.gold, q.acceptable),
        citation_recall=M.citation_recall(cited, q.gold, shown) if q.answerable else None,
        fact_correct=M.fact_correct(answer.text, q.expected, cited, q.gold),
        abstention_correct=M.abstention_correct(not q.answerable, answer.abstained, len(cited)),
        statements=statements,
        faithfulness=(sum(s.check.supported for s in statements) / len(statements)
                      if statements else None),
        judge_statements=judged,
        faithfulness_judge=(judge_result.score if judge_result is not None else None),
        judge_unparsed=(judge_result.unparsed if judge_result is not None else 0),
        split=q.split, tags=q.tags, correct=not misses, misses=misses,
        substantive=substantive, claims=claims,
        faithfulness_runtime=(sum(c.supported for c in claims) / len(claims) if claims else None),
        citation_checks=checks, key=key if q.key else None, echoes=echoes,
        extra_citation=extra,
        list_recall=M.list_recall(cited, q.gold, q.is_list),
        left_out=len(getattr(answer, "left_out", ())),
        closest=list(getattr(answer, "closest", ())),
    )


def error_result(q: Question, exc: BaseException) -> QuestionResult:
    """A question that raised while recording: a miss everywhere it can be one."""
    message = (str(exc).strip().splitlines() or [""])[0]
    return QuestionResult(
        id=q.id, kind=q.kind, question=q.question, history=q.history, gold=q.gold,
        acceptable=q.acceptable, expected=q.expected, query=q.question, answer="",
        abstained=False, cited=[], retrieved=[], sources_shown=0, recall_at_5=None,
        recall_at_10=None, reciprocal_rank=None, citation_precision=None,
        citation_recall=0.0 if q.answerable else None,
        fact_correct=False if q.expected else None, abstention_correct=False,
        split=q.split, tags=q.tags, correct=False, misses=["error"],
        substantive=False if q.answerable else None,
        error=f"{type(exc).__name__}: {message}"[:300])


def _load_manifest(cassettes: Path) -> dict:
    path = cassettes / MANIFEST
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    return {"questions": {}}


def _save_manifest(cassettes: Path, manifest: dict) -> None:
    cassettes.mkdir(parents=True, exist_ok=True)
    tmp = cassettes / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(cassettes / MANIFEST)


def stale_ids(questions: Sequence[Question], cassettes: Path, manifest: dict,
              model: str) -> list[str]:
    """Ids of the questions whose recording is missing or was made for other inputs."""
    prompts = prompt_texts()
    stale = []
    for q in questions:
        entry = manifest.get("questions", {}).get(q.id)
        has_file = (cassettes / f"{q.id}.yaml").is_file() or entry and entry.get("calls") == 0
        if (entry is None or not has_file
                or entry.get("fingerprint") != fingerprint(q, model, prompts)):
            stale.append(q.id)
    return stale


def _check_fresh(questions: Sequence[Question], cassettes: Path, manifest: dict,
                 model: str) -> None:
    stale = stale_ids(questions, cassettes, manifest, model)
    if stale:
        detail = f"{len(stale)} of {len(questions)} questions, first: {stale[0]}"
        raise StaleRecordingsError(stale_message(manifest, len(stale), detail))


def run_suite(
    settings: Settings,
    *,
    record: bool = False,
    evals_dir: Path | None = None,
    only: Sequence[str] | None = None,
    only_stale: bool = False,
    save_embeddings: bool = False,
    judge: bool = True,
    progress: Progress | None = None,
) -> EvalReport:
    """Ask every question of `evals/questions.jsonl`, replaying (default) or recording.

    `save_embeddings` rewrites evals/embeddings.npz after a replay (a change to the scorer
    or the chunking changes the texts embedded; recording always rewrites it).
    """
    from assistant.answer import Assistant
    from assistant.llm import LLM
    from assistant.recording import use_recording

    start = time.perf_counter()
    evals_dir = Path(evals_dir or default_evals_dir())
    cassettes = evals_dir / "cassettes"
    questions = load_questions(evals_dir / "questions.jsonl")
    if only:
        wanted = set(only)
        unknown = wanted - {q.id for q in questions}
        if unknown:
            raise PapersError(f"no question with id {', '.join(sorted(unknown))} in "
                              f"{evals_dir / 'questions.jsonl'}")
        questions = [q for q in questions if q.id in wanted]

    s = eval_settings(settings, record)
    model = s.model_name
    manifest = _load_manifest(cassettes)
    if not record:
        _check_fresh(questions, cassettes, manifest, model)
    elif only_stale:  # resume an interrupted recording, or re-record what a change touched
        stale = set(stale_ids(questions, cassettes, manifest, model))
        questions = [q for q in questions if q.id in stale]

    from .vectors import EmbeddingCache, corpus_chunk_texts, eval_store

    cache = EmbeddingCache(evals_dir / "embeddings.npz", s)
    if record or save_embeddings:
        cache(corpus_chunk_texts(s))  # every chunk vector goes into the file, built or not
    s = eval_store(s, cache)
    scorer = DeterministicScorer(cache)
    prompts = prompt_texts()
    results: list[QuestionResult] = []

    llm = LLM(s)
    assistant = Assistant(s, llm=llm)
    judge_model = Judge(llm) if judge else None
    completed = False
    errors_in_a_row = 0
    unmatched: list[str] = []
    try:
        for i, q in enumerate(questions):
            t0 = time.perf_counter()
            path = cassettes / f"{q.id}.yaml"
            try:
                with use_recording(path, record=record, rerecord=RERECORD) as cassette:
                    answer = assistant.ask(q.question, history=list(q.history))
                    judged = None
                    direct = [Statement(strip_markers(c.text), tuple(c.cites))
                              for c in answer.direct]
                    if judge_model is not None and direct:
                        # Only what the model wrote: the quotes are the abstracts' own words.
                        judged = judge_model.judge(q.question, answer.text, direct,
                                                   _cited_texts(answer), atomic=True)
            except Exception as exc:
                if not record and _is_unmatched(exc):
                    unmatched.append(q.id)  # the others are still replayed, to name them all
                    continue
                # Recording, one failing question (a timeout, a malformed reply) must not throw
                # away an hour of recordings: it counts as an error (the command exits 1) and
                # stays stale for `--only-stale`. Several in a row are the server, not the
                # question: stop. Replaying, any error is a bug: it goes up with its traceback.
                errors_in_a_row += 1
                if not record or errors_in_a_row >= MAX_ERRORS_IN_A_ROW:
                    raise
                manifest.get("questions", {}).pop(q.id, None)
                _save_manifest(cassettes, manifest)
                result = error_result(q, exc)
                result.seconds = time.perf_counter() - t0
                results.append(result)
                if progress:
                    progress(i + 1, len(questions), f"{q.id} ERROR {result.error}")
                continue
            errors_in_a_row = 0
            hits = assistant.search(answer.query or q.question, k=RETRIEVAL_DEPTH)
            retrieved = [h.title for h in hits]
            result = score_question(q, answer, retrieved, scorer, judged, s.k)
            result.seconds = time.perf_counter() - t0
            results.append(result)
            if record:  # saved after each question: an interrupted recording keeps its work
                manifest.setdefault("questions", {})[q.id] = {
                    "fingerprint": fingerprint(q, model, prompts),
                    "seconds": round(result.seconds, 1),
                    "calls": len(cassette),  # 0: abstained before any model call, no file
                }
                manifest["model"] = model
                _save_manifest(cassettes, manifest)
            if progress:
                progress(i + 1, len(questions), q.id)
        if unmatched:
            raise StaleRecordingsError(unmatched_message(manifest, unmatched, len(questions)))
        completed = True
    finally:
        assistant.close()
        if record or (save_embeddings and completed):
            # a full run keeps only the vectors it used; a partial one keeps all
            cache.save(keep_unused=bool(only) or only_stale or not completed)
    return EvalReport(results=results, model=model, mode="record" if record else "replay",
                      seconds=time.perf_counter() - start, embedded_live=cache.misses)
