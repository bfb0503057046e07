"""Chroma's and SQLite's raw failures as one-line PapersErrors (locked, damaged, read-only, full).

Used by store.py around every Chroma call, and by the code that writes files beside the store
(the BM25 index, the writer lock). It never talks to Chroma itself.
"""

from __future__ import annotations

import contextlib
import errno

from .errors import (
    PapersError,
    StoreBusyError,
    StoreDamagedError,
    StoreUnavailableError,
    StoreWriteError,
    sqlite_failure,
    store_message,
)

_FAILURES = {"busy": StoreBusyError, "damaged": StoreDamagedError,
             "readonly": StoreWriteError, "full": StoreWriteError}


def store_failure(exc: BaseException, where: str) -> PapersError | None:
    """The PapersError for a SQLite failure (locked, damaged, read-only, full), an OSError, or
    a Chroma server that went away in the middle of a command."""
    if isinstance(exc, PapersError):
        return exc
    if where.startswith(("http://", "https://")) and _connection_lost(exc):
        return StoreUnavailableError(
            f"lost the Chroma server at {where} ({type(exc).__name__}): start it again and rerun "
            "the command (`papers ingest` resumes where it stopped)")
    kind = sqlite_failure(exc)
    if kind is None and isinstance(exc, OSError):
        from .errors import user_message

        if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            return StoreWriteError(store_message("full", where))
        if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return StoreWriteError(store_message("readonly", where))
        message = user_message(exc)
        return StoreWriteError(message) if message else None
    if kind is None and type(exc).__module__.startswith("chromadb") and _disk_nearly_full(where):
        kind = "full"  # Chroma's compactor reports a full disk as "Failed to apply logs"
    return _FAILURES[kind](store_message(kind, where)) if kind else None


def _connection_lost(exc: BaseException) -> bool:
    """httpx's transport errors (refused, reset, cut mid-response), however chromadb wraps them."""
    for _ in range(8):  # the chain of causes, a few deep
        if exc is None:
            return False
        module = type(exc).__module__ or ""
        if isinstance(exc, ConnectionError) or module.startswith(("httpx", "httpcore")):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _disk_nearly_full(where: str) -> bool:
    """Less than 4 MiB free where the store lives (one group of chunks needs ~0.5 MiB)."""
    import shutil

    try:
        return shutil.disk_usage(where).free < 4 * 2**20
    except OSError:  # a server URL, or a folder gone
        return False


@contextlib.contextmanager
def translated(where: str):
    """Turn Chroma's and SQLite's raw failures into one-line PapersErrors (others pass)."""
    try:
        yield
    except Exception as exc:
        failure = store_failure(exc, where)
        if failure is None or failure is exc:
            raise
        raise failure from None


class _Guarded:
    """A Chroma collection whose calls raise PapersErrors for locked/damaged/read-only/full stores."""

    def __init__(self, collection, where: str) -> None:
        self._inner = collection
        self._where = where

    def __getattr__(self, name):
        value = getattr(self._inner, name)
        if not callable(value):
            return value
        where = self._where

        def call(*args, **kw):
            with translated(where):
                return value(*args, **kw)

        return call
