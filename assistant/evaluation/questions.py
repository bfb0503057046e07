"""The eval questions (`evals/questions.jsonl`): schema, loading and checks.

One JSON object per line:

    {"id": "fact-03", "kind": "fact", "question": "...",
     "gold": ["<exact corpus title>", ...],       # [] for abstain questions
     "acceptable": ["<title>", ...],              # optional: also fine to cite (not required)
     "expected": "57 billion" | ["4.31", ...],    # fact value(s); any one must be in the answer
     "history": ["<earlier user turn>", ...],     # follow-ups only, oldest first
     "tags": ["acronym", "typo", ...],            # optional: see TAGS
     "key": ["<regex>", ...],                     # answerable: what a substantive answer states
     "split": "dev" | "test" | "test2",           # required: tune on dev only; tests are frozen
     "note": "..."}                               # optional free text (abstain: closest papers)

Kinds: topic (several gold papers), fact (one paper and an expected value that occurs in its
abstract), paraphrase (no key term shared with the gold paper), abstain (nothing in the
collection: gold is empty), follow_up (needs the earlier turns in `history`).

Tags mark how a question is asked: `acronym` (names a method only by the acronym its abstract
defines), `typo` (misspelled on purpose), `chatty` (conversational framing), `near_miss`
(abstain questions in the collection's vocabulary but on a topic it does not cover; these need a
`note` naming the closest papers), `list` ("which papers ..." questions whose gold is every
paper of the collection that answers), `how` ("How does X work?": the key is the paper's
mechanism, which shares few words with the question).

`key` (every answerable question): regexes (case-insensitive) naming what a substantive answer
must state: a specific method, data set, result or value of a gold paper that the question and
the gold titles do not already give. An answer "states the key" when any one matches its text
with titles and citation markers removed; `tests/test_evals.py` checks that each regex matches a
gold abstract and neither the question nor a gold title.

The `test` and `test2` splits are frozen: `evals/<split>_split.sha256` holds the hash of their
questions' canonical JSON (`split_hash`). `test2` was written after the answer redesign was
planned and before it was built, from papers and angles the other splits do not use.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import PapersError
from assistant.text import normalize_title

KINDS = ("topic", "fact", "paraphrase", "abstain", "follow_up")
TAGS = ("acronym", "typo", "chatty", "near_miss", "list", "how")
SPLITS = ("dev", "test", "test2")
FROZEN = ("test", "test2")  # report only: never tuned on
_FIELDS = frozenset({"id", "kind", "question", "gold", "acceptable", "expected", "history",
                     "tags", "key", "split", "note"})


class QuestionsError(PapersError):
    """The questions file is malformed; the message names the line."""


@dataclass(frozen=True)
class Question:
    id: str
    kind: str
    question: str
    gold: tuple[str, ...] = ()
    acceptable: tuple[str, ...] = ()
    expected: tuple[str, ...] = ()  # any one of these must occur in the answer
    history: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    key: tuple[str, ...] = ()  # regexes: any one in the answer = it states what it must
    split: str = "dev"
    note: str = ""

    @property
    def answerable(self) -> bool:
        return self.kind != "abstain"

    @property
    def single_paper(self) -> bool:
        """One gold paper and not a list question: citing any other paper is an extra."""
        return self.answerable and len(self.gold) == 1 and "list" not in self.tags

    @property
    def is_list(self) -> bool:
        return "list" in self.tags


def _strings(value: object, name: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise QuestionsError(f"{where}: `{name}` must be a string or a list of non-empty strings")
    return tuple(v.strip() for v in value)


def parse_question(obj: object, where: str, require_split: bool = False) -> Question:
    """One question object, checked; `split` may be left out (as "dev") unless `require_split`."""
    if not isinstance(obj, dict):
        raise QuestionsError(f"{where}: each line must be a JSON object")
    unknown = set(obj) - _FIELDS
    if unknown:
        raise QuestionsError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    qid, kind, text = obj.get("id"), obj.get("kind"), obj.get("question")
    if not isinstance(qid, str) or not qid:
        raise QuestionsError(f"{where}: `id` must be a non-empty string")
    if kind not in KINDS:
        raise QuestionsError(f"{where}: `kind` must be one of {', '.join(KINDS)}")
    if not isinstance(text, str) or not text.strip():
        raise QuestionsError(f"{where}: `question` must be a non-empty string")
    q = Question(
        id=qid,
        kind=kind,
        question=text.strip(),
        gold=_strings(obj.get("gold"), "gold", where),
        acceptable=_strings(obj.get("acceptable"), "acceptable", where),
        expected=_strings(obj.get("expected"), "expected", where),
        history=_strings(obj.get("history"), "history", where),
        tags=_strings(obj.get("tags"), "tags", where),
        key=_strings(obj.get("key"), "key", where),
        split=obj.get("split", None if require_split else "dev"),
        note=_note(obj.get("note"), where),
    )
    bad_tags = sorted(set(q.tags) - set(TAGS))
    if bad_tags:
        raise QuestionsError(
            f"{where}: unknown tag(s) {', '.join(bad_tags)}; tags are {', '.join(TAGS)}")
    if len(set(q.tags)) != len(q.tags):
        raise QuestionsError(f"{where}: a tag is listed twice")
    if q.split not in SPLITS:
        raise QuestionsError(f"{where}: `split` must be one of {', '.join(SPLITS)}")
    if "near_miss" in q.tags and (kind != "abstain" or not q.note):
        raise QuestionsError(f"{where}: near_miss questions are abstain questions with a `note` "
                             "naming the closest papers")
    if kind == "abstain" and (q.gold or q.expected or q.key):
        raise QuestionsError(f"{where}: abstain questions have no gold papers, expected value "
                             "or key")
    for pattern in q.key:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise QuestionsError(f"{where}: key {pattern!r} is not a regular expression "
                                 f"({exc})") from None
    if "list" in q.tags and (kind not in ("topic", "follow_up") or len(q.gold) < 2):
        raise QuestionsError(f"{where}: list questions are topic questions with 2+ gold papers")
    if kind != "abstain" and not q.gold:
        raise QuestionsError(f"{where}: {kind} questions need at least one gold title")
    if kind == "fact" and (len(q.gold) != 1 or not q.expected):
        raise QuestionsError(f"{where}: fact questions need one gold title and an expected value")
    if kind == "follow_up" and not q.history:
        raise QuestionsError(f"{where}: follow_up questions need the earlier turns in `history`")
    return q


def _note(value: object, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise QuestionsError(f"{where}: `note` must be a non-empty string")
    return value.strip()


def load_questions(path: Path) -> list[Question]:
    """Read and check the questions file (ids unique)."""
    path = Path(path)
    if not path.is_file():
        raise QuestionsError(f"{path}: no questions file; the eval suite needs evals/questions.jsonl")
    out: list[Question] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        where = f"{path.name}:{number}"
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise QuestionsError(f"{where}: not JSON ({exc.msg})") from None
        q = parse_question(obj, where, require_split=True)
        if q.id in seen:
            raise QuestionsError(f"{where}: duplicate id {q.id!r}")
        seen.add(q.id)
        out.append(q)
    if not out:
        raise QuestionsError(f"{path}: no questions")
    return out


def canonical(q: Question) -> str:
    """One question as sorted-key, compact JSON of its non-empty fields (the frozen form)."""
    fields = {"id": q.id, "kind": q.kind, "question": q.question, "gold": list(q.gold),
              "acceptable": list(q.acceptable), "expected": list(q.expected),
              "history": list(q.history), "tags": list(q.tags), "key": list(q.key),
              "split": q.split, "note": q.note}
    fields = {k: v for k, v in fields.items() if v}
    return json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def split_hash(questions: list[Question], split: str = "test") -> str:
    """sha256 of one split (a frozen one: `test`, `test2`): its questions' canonical JSON lines,
    sorted."""
    lines = sorted(canonical(q) for q in questions if q.split == split)
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def unknown_titles(questions: list[Question], titles: list[str]) -> list[str]:
    """Gold/acceptable titles that are not in the collection (`titles`), as `id: title`."""
    known = {normalize_title(t) for t in titles}
    return [
        f"{q.id}: {t}"
        for q in questions
        for t in (*q.gold, *q.acceptable)
        if normalize_title(t) not in known
    ]


# --------------------------------------------------------------------------- paraphrase check

# Words that carry no topic: a paraphrase question may share these with its paper.
_STOP = frozenset(
    """a about above after again against all also an and any are as at be because been before
    being between both but by can could did do does doing during each few for from further had
    has have having how i if in into is it its itself just me more most my no nor not of off on
    once one only or other our out over own same should so some such than that the their them
    then there these they this those through to too under until up very was we were what when
    where which while who whom why will with would you your paper papers work works study
    studies research method methods approach approaches way ways help helps kind kinds there's
    is it's worth get any""".split()
)
_WORD = re.compile(r"[a-z0-9]+")


def _stem(word: str) -> str:
    for suffix in ("ations", "ation", "ings", "ing", "ions", "ion", "ies", "ied", "es", "ed",
                   "ers", "er", "ly", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def key_terms(text: str) -> set[str]:
    """Stems of the content words of `text` (lowercased, stop words dropped)."""
    return {_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1}


def shared_key_terms(question: str, paper_text: str) -> set[str]:
    """Key terms (stems) of `question` that also occur in `paper_text` (title + abstract)."""
    return key_terms(question) & key_terms(paper_text)
