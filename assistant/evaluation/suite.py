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
    split_statements,
)
from .judge import Judge, JudgeResult
from .questions import KINDS, Question, load_questions

REPLAY_BASE_URL = "http://127.0.0.1:9/v1"  # nothing listens: an unrecorded call fails at once
EVAL_CONTEXT_WINDOW = 4096  # the embedded model's n_ctx, in record and replay alike
RETRIEVAL_DEPTH = 10
RERECORD = "papers eval --record"
MANIFEST = "manifest.json"
DEFAULT_MINUTES_PER_QUESTION = 1.5

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


# Settings that shape the requests: the suite runs with their declared defaults whatever the
# environment says, so a developer's PAPERS_K does not make the recordings look stale.
PINNED_SETTINGS = ("chunk_size", "chunk_overlap", "k", "candidates", "rrf_k", "dense_weight",
                   "bm25_weight", "bm25_coverage_power", "title_weight", "name_weight",
                   "name_max_papers", "gate_similarity", "gate_coverage", "gate_min_similarity",
                   "gate_margin", "gate_agree", "keep_similarity_drop", "keep_min_similarity",
                   "keep_coverage_ratio", "keep_min_coverage", "max_answer_tokens",
                   "temperature", "seed")


def pinned_settings() -> dict[str, Any]:
    fields = Settings.model_fields
    return {name: fields[name].default for name in PINNED_SETTINGS if name in fields}


def fingerprint(question: Question, model: str, context_window: int,
                prompts: dict[str, str] | None = None) -> str:
    payload = {
        "prompts": prompts if prompts is not None else prompt_texts(),
        "model": model,
        "context_window": context_window,
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
        "context_window": settings.context_window or EVAL_CONTEXT_WINDOW,
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

    def to_dict(self) -> dict:
        d = asdict(self)
        d["statements"] = [s.to_dict() for s in self.statements]
        for key in ("history", "gold", "acceptable", "expected"):
            d[key] = list(d[key])
        d["seconds"] = round(self.seconds, 2)
        return d


@dataclass
class EvalReport:
    results: list[QuestionResult]
    model: str
    mode: str  # "replay" or "record"
    seconds: float
    similarity_threshold: float = SIMILARITY_THRESHOLD
    embedded_live: int = 0  # texts not found in evals/embeddings.npz

    def summary(self, results: Sequence[QuestionResult] | None = None) -> dict[str, Any]:
        rs = list(self.results if results is None else results)
        answerable = [r for r in rs if r.kind != "abstain"]
        abstain = [r for r in rs if r.kind == "abstain"]
        statements = [s for r in rs for s in r.statements]
        judged = [j for r in rs for j in r.judge_statements]
        return {
            "questions": len(rs),
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
            },
            "facts": {
                "accuracy": M.mean_of(r.fact_correct for r in rs),
                "questions": sum(r.fact_correct is not None for r in rs),
            },
            "abstention": {
                "accuracy": M.mean_of(r.abstention_correct for r in rs),
                "abstain_recall": M.mean_of(r.abstention_correct for r in abstain),
                "false_abstention_rate": M.mean_of(r.abstained for r in answerable),
                "abstain_questions": len(abstain),
            },
            "faithfulness": M.mean_of(r.faithfulness for r in rs),
            "faithfulness_judge": M.mean_of(r.faithfulness_judge for r in rs),
            "statements": {
                "total": len(statements),
                "supported": sum(s.check.supported for s in statements),
                "judge_total": len(judged),
                "judge_supported": sum(bool(j.get("supported")) for j in judged),
            },
        }

    def to_dict(self) -> dict[str, Any]:
        out = self.summary()
        out["by_kind"] = {
            kind: self.summary([r for r in self.results if r.kind == kind])
            for kind in KINDS if any(r.kind == kind for r in self.results)
        }
        out["results"] = [r.to_dict() for r in self.results]
        out["meta"] = {"model": self.model, "mode": self.mode, "seconds": round(self.seconds, 1),
                       "similarity_threshold": self.similarity_threshold,
                       "embedded_live": self.embedded_live}
        return out


# --------------------------------------------------------------------------- thresholds


def metric_at(report: dict, path: str) -> Any:
    """`by_kind.fact.facts.accuracy` -> the value (keys may contain '@', never '.')."""
    cur: Any = report
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def check_thresholds(report: dict, thresholds: dict[str, dict[str, float]]) -> list[str]:
    """One line per metric outside its bounds (or missing).

    `thresholds` is `{"min": {path: lowest allowed}, "max": {path: highest allowed}}`, paths
    as in `metric_at` (the format of evals/thresholds.json).
    """
    failures = []
    for bound, op in (("min", "<"), ("max", ">")):
        for path, limit in sorted(thresholds.get(bound, {}).items()):
            value = metric_at(report, path)
            if not isinstance(value, (int, float)):
                failures.append(f"{path}: no value ({bound} {limit})")
            elif (value < limit) if bound == "min" else (value > limit):
                failures.append(f"{path} = {value:.3f} {op} {limit:.3f}")
    return failures


def load_thresholds(evals_dir: Path) -> dict[str, dict[str, float]]:
    """evals/thresholds.json: {"min": {...}, "max": {...}} (keys starting with _ are notes)."""
    path = Path(evals_dir) / "thresholds.json"
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {bound: {k: float(v) for k, v in data.get(bound, {}).items() if not k.startswith("_")}
            for bound in ("min", "max") if bound in data}


# --------------------------------------------------------------------------- the run


def _cited_texts(answer) -> dict[int, CitedText]:
    return {c.n: CitedText(c.n, c.title, c.quote) for c in answer.citations}


def score_question(q: Question, answer, retrieved: list[str], scorer: DeterministicScorer,
                   judge_result=None, shown_k: int = 5) -> QuestionResult:
    """Everything measured on one answered question (pure given its inputs)."""
    cited = [c.title for c in answer.citations]
    sources = _cited_texts(answer)
    statements: list[StatementResult] = []
    if not answer.abstained:
        for st in split_statements(answer.text):
            texts = [sources[n] for n in st.cites if n in sources]
            statements.append(StatementResult(st.text, st.cites, scorer.check(st.text, texts)))
    judged: list[dict] = []
    if judge_result is not None:
        judged = [{"text": s.text, "cites": list(s.cites), "supported": v}
                  for s, v in zip(judge_result.statements, judge_result.verdicts)]
    shown = len(answer.sources) or shown_k
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
    )


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


def stale_ids(questions: Sequence[Question], cassettes: Path, manifest: dict, model: str,
              context_window: int) -> list[str]:
    """Ids of the questions whose recording is missing or was made for other inputs."""
    prompts = prompt_texts()
    stale = []
    for q in questions:
        entry = manifest.get("questions", {}).get(q.id)
        has_file = (cassettes / f"{q.id}.yaml").is_file() or entry and entry.get("calls") == 0
        if (entry is None or not has_file
                or entry.get("fingerprint") != fingerprint(q, model, context_window, prompts)):
            stale.append(q.id)
    return stale


def _check_fresh(questions: Sequence[Question], cassettes: Path, manifest: dict, model: str,
                 context_window: int) -> None:
    stale = stale_ids(questions, cassettes, manifest, model, context_window)
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
    model, ctx = s.model_name, s.effective_context_window
    manifest = _load_manifest(cassettes)
    if not record:
        _check_fresh(questions, cassettes, manifest, model, ctx)
    elif only_stale:  # resume an interrupted recording, or re-record what a change touched
        stale = set(stale_ids(questions, cassettes, manifest, model, ctx))
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
    try:
        for i, q in enumerate(questions):
            t0 = time.perf_counter()
            path = cassettes / f"{q.id}.yaml"
            try:
                with use_recording(path, record=record, rerecord=RERECORD) as cassette:
                    answer = assistant.ask(q.question, history=list(q.history))
                    judged = None
                    if judge_model is not None and not answer.abstained:
                        stmts = split_statements(answer.text)
                        if answer.citations:
                            judged = judge_model.judge(q.question, answer.text, stmts,
                                                       _cited_texts(answer))
                        else:  # nothing cited: nothing to check against, all unsupported
                            judged = JudgeResult(tuple(stmts), (False,) * len(stmts), 0)
            except Exception as exc:
                if not record and _is_unmatched(exc):
                    raise StaleRecordingsError(
                        stale_message(manifest, len(questions), f"first: {q.id}")) from exc
                raise
            hits = assistant.search(answer.query or q.question, k=RETRIEVAL_DEPTH)
            retrieved = [h.title for h in hits]
            result = score_question(q, answer, retrieved, scorer, judged, s.k)
            result.seconds = time.perf_counter() - t0
            results.append(result)
            if record:  # saved after each question: an interrupted recording keeps its work
                manifest.setdefault("questions", {})[q.id] = {
                    "fingerprint": fingerprint(q, model, ctx, prompts),
                    "seconds": round(result.seconds, 1),
                    "calls": len(cassette),  # 0: abstained before any model call, no file
                }
                manifest["model"], manifest["context_window"] = model, ctx
                _save_manifest(cassettes, manifest)
            if progress:
                progress(i + 1, len(questions), q.id)
        completed = True
    finally:
        assistant.close()
        if record or (save_embeddings and completed):
            # a full run keeps only the vectors it used; a partial one keeps all
            cache.save(keep_unused=bool(only) or only_stale or not completed)
    return EvalReport(results=results, model=model, mode="record" if record else "replay",
                      seconds=time.perf_counter() - start, embedded_live=cache.misses)
