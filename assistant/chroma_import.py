"""Import chromadb without the start-up cost of its `overrides` decorators.

chromadb marks ~160 methods with `overrides.override`, which at import walks the caller's frame
for the base classes and compares each method's signature with theirs: a check of chromadb's
own code for its developers, done again in every process. Measured with cProfile in a new
`papers search` process on 2 cores: 0.52 s of chromadb's 0.93 s import. Here the decorator only
marks the method (`__override__ = True`, which `EnforceOverrides` reads), as `overrides` does
before it checks. Run-time behaviour is unchanged. Imported by store.py and embeddings.py, the
only modules that touch chromadb, before they import it.
"""

from __future__ import annotations

import sys


def _mark(method=None, **_options):
    """`@override` / `@override(check_signature=...)`: mark the method, check nothing."""
    if method is None:
        return _mark

    try:
        method.__override__ = True
    except (AttributeError, TypeError):  # a property or builtin: as overrides, leave it be
        pass
    return method


def prepare() -> None:
    """Swap the decorators in before chromadb's first import (no-op once it is imported)."""
    if "chromadb" in sys.modules:
        return
    try:
        import overrides
    except ImportError:  # pragma: no cover - chromadb depends on it
        return
    overrides.override = overrides.overrides = _mark
