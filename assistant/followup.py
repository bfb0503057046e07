"""Follow-ups without a model call: what "it" and "they" point to, decided from the history.

"What strategies does it propose?" after "Which papers study the stability gap?" is about the
paper that answer cited. So the follow-up is answered from that paper's whole abstract (its
quote may take up to three sentences), and only that paper can be cited. A rewrite by the model
cost ~2.6 s on 2 cores and sometimes drifted to another topic; this costs one search at most.

    refers_back("What strategies does it propose?")             -> True
    refers_back("Which of them uses diffusion models?")         -> True
    refers_back("Which papers study methods that prune BERT?")  -> False  ("that" relative)
    elliptical("And for speech?")                               -> True  (searched with the
                                                                  previous question's words)
"""

from __future__ import annotations

import re

_BACK = re.compile(
    r"\b(it|its|it's|itself|they|them|their|theirs|themselves|he|she|his|her)\b"
    r"|\b(this|that|these|those|the|both|either)\s+(paper|papers|method|methods|model|models|"
    r"approach|approaches|work|works|study|studies|dataset|datasets|corpus|benchmark|technique|"
    r"framework|system|one|ones|authors?|first|second|third|fourth|last|latter|former|same|"
    r"above|previous|two|three)\b"
    r"|\b(of|among|between) (them|those|these|the two|the three)\b|\bwhich one\b"
    r"|\bthe [\w-]+ ones?\b",  # "the Portuguese one"
    re.IGNORECASE,
)
# Signs that the question has no subject of its own: "does it ...", "its ...", "of them",
# "the second one". An object "it" ("adapt it to Korean") may point inside the question.
_STRONG = re.compile(
    r"\b(does|did|do|is|was|are|were|can|could|has|have|had|will|would|should)\s+(it|they|this|"
    r"that|these|those|he|she)\b|\b(its|their|theirs|his|her)\b|^\s*(it|they|this|these)\b"
    r"|\b(of|among|between) (them|those|these|the two|the three)\b|\bwhich one\b"
    r"|\bthe (paper|method|model|approach|authors?|first|second|third|fourth|last|latter|former|"
    r"same)\b",
    re.IGNORECASE,
)
_ELLIPSIS = re.compile(r"^\s*(and|also|what about|how about|and what about|same for|but)\b",
                       re.IGNORECASE)
_ORDINAL = re.compile(r"\b(first|second|third|fourth|fifth|last)\b", re.IGNORECASE)
_ORDINALS = {"first": 0, "second": 1, "third": 2, "fourth": 3, "fifth": 4, "last": -1}


_AMONG = re.compile(r"\b(which|any|none|each|all|both|some|how many|one) of "
                    r"(them|these|those|the papers)\b|\bamong (them|these|those)\b", re.IGNORECASE)
# "the Portuguese one", "the best one"; not "the second one" (an ordinal points at one paper)
_THE_X_ONE = re.compile(r"\bthe (?!(?:first|second|third|fourth|fifth|last)\b)([\w-]+) ones?\b",
                        re.IGNORECASE)
_NOT_ATTRIBUTE = frozenset("same other best right only".split())


def attribute_one(question: str) -> str:
    """"What about the Portuguese one?" -> "Portuguese": the word that picks the paper."""
    m = _THE_X_ONE.search(question)
    return m[1] if m and m[1].lower() not in _NOT_ATTRIBUTE else ""


_COMPARE = re.compile(r"\b(compare|comparison|differ|differs|difference|differences|contrast|versus|vs)\b"
                      r".{0,40}\b(them|they|these|those|the two|both)\b"
                      r"|\b(them|they|these|those|the two|both)\b.{0,40}\b(compare|differ|difference)",
                      re.IGNORECASE)


def compares(question: str) -> bool:
    """"Compare them.", "How do the two differ?": the papers last talked about, side by side."""
    return bool(_COMPARE.search(question))


def among(question: str) -> bool:
    """"Which of them ...", "any of these ...", "the Portuguese one": a choice among several papers."""
    return bool(_AMONG.search(question) or _THE_X_ONE.search(question))


# "Are there other papers on continual pre-training?", "anything else on this?", "papers besides
# these?": the papers already shown are not what is asked for ("other methods" is a topic).
_OTHERS = re.compile(r"\b(other|more|additional|further|different) (papers?|works?|studies|articles|"
                     r"ones|research|publications)\b|\b(anything|anyone|what|who) else\b|\bothers\b|"
                     r"\b(besides|apart from|beyond|except) (it|this|that|these|those|them)\b|"
                     r"\bnot (yet )?(mentioned|shown|listed|cited)\b", re.IGNORECASE)


def asks_others(question: str) -> bool:
    """"Are there other papers on X?": the conversation's papers are left out of the answer."""
    return bool(_OTHERS.search(question))


def refers_back(question: str) -> bool:
    """Whether the question points at something of the conversation ("it", "the second one")."""
    return bool(_BACK.search(question))


def surely_back(question: str) -> bool:
    """Whether the question cannot stand alone ("What does it propose?", "Which of them ...")."""
    return bool(_STRONG.search(question))


def elliptical(question: str) -> bool:
    """A fragment that continues the previous question ("And for speech?", "What about BERT?")."""
    return bool(_ELLIPSIS.search(question)) or len(re.findall(r"[A-Za-z]{3,}", question)) <= 2


def ordinal(question: str) -> int | None:
    """The index "the second one" / "the last paper" points at, if any."""
    match = _ORDINAL.search(question)
    if match and re.search(r"\b(one|paper|method|model|approach|work|study)\b",
                           question[match.end():match.end() + 20], re.IGNORECASE):
        return _ORDINALS[match.group(1).lower()]
    return None
