"""Prompt files, loaded by name and filled with checked variables.

Prompts live in the repository's top-level `prompts/` folder and ship inside the wheel as
`assistant/prompts/`. A prompt is plain text with `$name` / `${name}` placeholders
(string.Template); `$$` is a literal dollar. Rendering fails when the code passes a variable the
file does not use or omits one it does, so a prompt edit and a code edit cannot drift apart.

    >>> render("condense", history="Q: hi", question="and then?")  # doctest: +SKIP
"""

from __future__ import annotations

import string
from functools import lru_cache
from pathlib import Path

from .errors import PromptError

_HERE = Path(__file__).resolve().parent
# Wheel layout first, then the source checkout (editable installs, tests).
PROMPT_DIRS = (_HERE / "prompts", _HERE.parent / "prompts")


def prompt_path(name: str) -> Path:
    for folder in PROMPT_DIRS:
        path = folder / f"{name}.txt"
        if path.is_file():
            return path
    raise PromptError(f"prompt '{name}' not found in {', '.join(map(str, PROMPT_DIRS))}; "
                      "reinstall paper-assistant")


@lru_cache(maxsize=None)
def load(name: str) -> string.Template:
    """The prompt `name` as a Template (cached: prompt files do not change while running)."""
    text = prompt_path(name).read_text(encoding="utf-8")
    template = string.Template(text)
    if not template.is_valid():
        raise PromptError(f"prompt '{name}' has a malformed placeholder; use $$ for a dollar sign")
    return template


def variables(name: str) -> set[str]:
    return set(load(name).get_identifiers())


def render(name: str, **values: object) -> str:
    """Fill prompt `name`; the keyword names must be exactly the prompt's variables."""
    expected = variables(name)
    given = set(values)
    if expected != given:
        missing = ", ".join(sorted(expected - given)) or "-"
        extra = ", ".join(sorted(given - expected)) or "-"
        raise PromptError(f"prompt '{name}' variables do not match (missing: {missing}; "
                          f"unexpected: {extra})")
    return load(name).substitute({k: str(v) for k, v in values.items()})
