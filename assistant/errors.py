"""Errors the user can act on. Each renders as one line that says what to do next.

The core raises these; only the CLI turns them into messages and exit codes (as simonw/llm does).
"""

from __future__ import annotations

import errno


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


class EmbeddingError(PapersError):
    """The embeddings endpoint failed (after retries), or is not configured completely."""


class PromptError(PapersError):
    """A prompt file is missing or its variables do not match what the code passes."""


class StoreBusyError(PapersError):
    """Another process holds the store's database locked."""


class StoreLockedError(StoreBusyError):
    """Another `papers ingest` holds the store's writer lock."""


class UsageError(PapersError):
    """A command was given something it cannot use (an empty query)."""

    exit_code = 2  # as click's usage errors


class StoreDamagedError(PapersError):
    """The store's database file is truncated or corrupt."""


class StoreWriteError(PapersError):
    """The store (or the BM25 index beside it) cannot be written: permissions, read-only, disk full."""


# --------------------------------------------------------------------------- raw exceptions

_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_NO_WRITE = {errno.EACCES, errno.EPERM, errno.EROFS}
# SQLite's messages (Python's sqlite3 and Chroma's Rust backend use the same wording).
_SQLITE = (
    (("database is locked", "database table is locked", "(code: 5)"), "busy"),
    (("disk image is malformed", "file is not a database", "(code: 11)", "(code: 26)"), "damaged"),
    (("readonly database", "(code: 8)", "unable to open database file", "(code: 14)"), "readonly"),
    (("database or disk is full", "(code: 13)"), "full"),
)


def sqlite_failure(exc: BaseException) -> str | None:
    """"busy", "damaged", "readonly" or "full" when `exc` carries one of SQLite's errors."""
    text = str(exc)
    for needles, kind in _SQLITE:
        if any(n in text for n in needles):
            return kind
    return None


def store_message(kind: str, where: str | None = None) -> str:
    """The one line for a SQLite/disk failure of the store (or file) at `where`."""
    at = f" at {where}" if where else ""
    return {
        "busy": f"the store{at} is locked by another process (a running `papers ingest`?): "
                "wait for it to finish and retry",
        "damaged": f"the store{at} is damaged: rebuild it with `papers ingest --rebuild` "
                   "(or restore a backup)",
        "readonly": f"cannot write to {where or 'the store'}: check its permissions or set PAPERS_STORE_DIR",
        "full": f"the disk holding {where or 'the store'} is full: free some space or set PAPERS_STORE_DIR "
                "to another disk",
    }[kind]


def user_message(exc: BaseException) -> str | None:
    """One line saying what to do next for a failure the user can cause or meet, else None.

    None means a bug: the caller lets it keep its traceback.
    """
    if isinstance(exc, PapersError):
        return str(exc)
    if isinstance(exc, OSError) and not isinstance(exc, (ConnectionError, TimeoutError)):
        where = str(exc.filename) if exc.filename is not None else None
        if exc.errno in _NO_SPACE:
            return store_message("full", where)
        if isinstance(exc, PermissionError) or exc.errno in _NO_WRITE:
            return store_message("readonly", where)
        if where is not None:
            reason = exc.strerror or type(exc).__name__
            return f"{where}: {reason.lower()}: check the path, its permissions and free space"
        return None
    kind = _sqlite_kind(exc)
    return store_message(kind) if kind else None


def _sqlite_kind(exc: BaseException) -> str | None:
    """SQLite failures arrive as sqlite3 errors or Chroma's InternalError; nothing else is one."""
    module = type(exc).__module__ or ""
    if module.startswith(("sqlite3", "chromadb")):
        return sqlite_failure(exc)
    return None
