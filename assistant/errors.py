"""Errors the user can act on. Each renders as one line that says what to do next.

The core raises these; only the CLI turns them into messages and exit codes (as simonw/llm does).
"""

from __future__ import annotations


class PapersError(Exception):
    """Base class: `str(err)` is the one-line message shown to the user."""

    exit_code = 1


class AssetError(PapersError):
    """A pinned offline asset (model or encoding file) is missing or corrupt."""


class CorpusError(PapersError):
    """Input papers could not be read (missing file, unknown format, --strict problems)."""


class StoreMissingError(PapersError):
    """There is no store, or it holds no papers."""


class StoreMismatchError(PapersError):
    """The store was built with another embedding model or chunking."""


class StoreUnavailableError(PapersError):
    """The configured Chroma server cannot be reached."""


class LLMError(PapersError):
    """The language model could not answer (unreachable, unknown model, bad key, ...)."""


class PromptError(PapersError):
    """A prompt file is missing or its variables do not match what the code passes."""


def user_message(exc: BaseException) -> str | None:
    """One line for a failure the user can act on; None for a bug (placeholder, see issue 10)."""
    if isinstance(exc, PapersError):
        return str(exc)
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return None
