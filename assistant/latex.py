"""Light LaTeX cleanup for arXiv text: readable, not a TeX renderer, and linear in the text.

`$x^2$` -> `x^2`, `\\emph{x}` -> `x`, `\\'e` -> `e`, `{BERT}` -> `BERT`, `~` -> space; `--` kept.

Why one pass over the braces: the cleanup used to repeat two regexes (a style command, a brace
group holding no brace) until nothing changed, one pass per level of nesting. A 40 KB title of
nested braces then took 68 s (1k, 4k and 16k levels: 0.1, 1.1 and 17.8 s). `unbrace` gives the
same result for real titles with one scan, keeping a stack of the open groups.
"""

from __future__ import annotations

import re

_WS = re.compile(r"\s+")
_MATH = re.compile(r"(?<!\\)\$\$?(.+?)(?<!\\)\$\$?", re.S)
# \'e, \'{e}, {\'e}, \c{c}, \c c; letter-named accents need a brace or space (\cite is no accent).
_ACCENT = re.compile(
    r"(?:(?<![A-Za-z])(\{))?"  # {\'e}: the group's brace, not \textbf's
    r"\\(?:[`'^\"~=.]\s*|[Hcuvk](?=[\s{])\s*)"
    r"(?:\{([A-Za-z])\}|([A-Za-z]))(\})?"
)
_ESCAPED = re.compile(r"\\([%&_#$])")
# What the scan stops at: a style command's opening ("\emph{"), an escaped brace, a brace.
_BRACE_TOKEN = re.compile(
    r"\\(?:emph|textit|textbf|texttt|textsc|textrm|textsf|underline)\{|\\[{}]|[{}]")
# A plain group after one of these is TeX syntax (x^{2}, \frac{a}, word{...}): kept.
_GLUED = re.compile(r"[\\\w^_]")


def clean_latex(text: str) -> str:
    """Readable text from an arXiv title or abstract (see the module docstring)."""
    # The `in` guards skip the regexes on plain text: most of a snapshot's millions of
    # strings hold no TeX, and the substitutions dominate reading time otherwise.
    if "$" in text:
        text = _MATH.sub(r"\1", text)
    if "\\" in text:
        text = _ACCENT.sub(_accent, text)  # before "~" -> space, since \~n is an accent
    if "{" in text:
        text = unbrace(text)
    text = text.replace("~", " ")
    if "\\" in text:
        text = _ESCAPED.sub(r"\1", text)
    return _WS.sub(" ", text).strip()


def _accent(match: re.Match[str]) -> str:
    """The plain letter, keeping a brace only when it was not part of the accent group."""
    opened, letter, closed = match.group(1), match.group(2) or match.group(3), match.group(4)
    if opened and closed:
        return letter
    return (opened or "") + letter + (closed or "")


class _Group:
    """An open brace group: where its opening sits in the output, and what its content holds."""

    __slots__ = ("kind", "at", "backslash", "kept_brace")

    def __init__(self, kind: str, at: int) -> None:
        self.kind = kind  # "style" (\emph{), "plain" ({BERT}) or "keep" (x^{2})
        self.at = at
        self.backslash = False  # a command inside: a plain group around it is TeX, kept
        self.kept_brace = False  # a group inside was kept: this one keeps its braces too


def unbrace(text: str) -> str:
    """Drop style commands (`\\textbf{\\emph{x}}` -> `x`) and plain groups (`{{BERT}}` -> `BERT`).

    A style command goes with its braces unless a kept group is inside it; a plain group (not
    glued to a word, `\\`, `^` or `_`) goes unless it holds a command or a kept group. Each
    closing brace is settled once, from flags its content set: linear time at any depth.
    """
    out: list[str] = []
    stack: list[_Group] = []
    pos = 0
    for match in _BRACE_TOKEN.finditer(text):
        piece = text[pos:match.start()]
        out.append(piece)
        if stack and "\\" in piece:
            stack[-1].backslash = True
        token = match.group()
        pos = match.end()
        if token in ("\\{", "\\}"):  # an escaped brace is text
            out.append(token)
            if stack:
                stack[-1].backslash = True
        elif token == "}":
            _close(out, stack)
        else:
            start = match.start()
            glued = start > 0 and _GLUED.match(text, start - 1) is not None
            kind = "style" if token != "{" else ("keep" if glued else "plain")
            stack.append(_Group(kind, len(out)))
            out.append(token)
    out.append(text[pos:])
    return "".join(out)


def _close(out: list[str], stack: list[_Group]) -> None:
    if not stack:
        out.append("}")  # unbalanced: kept as written
        return
    group = stack.pop()
    dropped = ((group.kind == "style" and not group.kept_brace)
               or (group.kind == "plain" and not (group.backslash or group.kept_brace)))
    if dropped:
        out[group.at] = ""
    else:
        out.append("}")
    if stack:
        parent = stack[-1]
        parent.backslash |= group.backslash or (group.kind == "style" and not dropped)
        parent.kept_brace |= not dropped
