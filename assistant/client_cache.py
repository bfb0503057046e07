"""A Chroma server's clients keep derived indexes in the cache dir, one folder a collection, pruned.

A client of a server keeps the collection's BM25 index in `<cache dir>/servers/collection-<id>`
(2.1 GB of arrays at 1M chunks, ~11 min to build: benchmarks/README.md 5g). A collection that
was deleted or rebuilt on the server (a rebuilt one has a new id), or a server no longer used,
would leave its folder behind for good. So every resolution marks its own folder as used now
(`.last-used`) and removes the sibling folders no client has used for STALE_DAYS. A folder in use
is never that old: each process marks it when it opens the collection.

    >>> folder = collection_dir(cache, "http://h:8000", "papers", "7f3c...")  # doctest: +SKIP
    >>> folder.name                                                           # doctest: +SKIP
    'collection-7f3c...'
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
from pathlib import Path

STALE_DAYS = 30
USED = ".last-used"


def collection_dir(cache_dir: Path, url: str, collection: str, collection_id: str,
                   now: float | None = None) -> Path:
    """The collection's folder under `<cache_dir>/servers`, marked used; stale siblings removed.

    A folder kept under the older key (a hash of URL and collection name) is moved to the
    collection's the first time."""
    servers = cache_dir / "servers"
    folder = servers / f"collection-{collection_id}"
    if not folder.exists():
        old = hashlib.sha1(f"{url}|{collection}".encode()).hexdigest()[:12]
        with contextlib.suppress(OSError):  # none, or another client moved it first
            (servers / old).rename(folder)
    with contextlib.suppress(OSError):  # a read-only cache: the index is then held in memory
        folder.mkdir(parents=True, exist_ok=True)
        mark_used(folder, now)
        prune(servers, keep=folder, now=now)
    return folder


def mark_used(folder: Path, now: float | None = None) -> None:
    marker = folder / USED
    marker.touch()
    if now is not None:
        os.utime(marker, (now, now))


def last_used(folder: Path) -> float:
    """When a client last opened the folder's collection (older code wrote no mark: the
    folder's own time, which its last index write set)."""
    for path in (folder / USED, folder):
        with contextlib.suppress(OSError):
            return path.stat().st_mtime
    return 0.0


def prune(servers: Path, keep: Path, now: float | None = None, days: float = STALE_DAYS
          ) -> list[Path]:
    """Remove the folders under `servers` other than `keep` unused for `days`; the removed."""
    now = time.time() if now is None else now
    removed = []
    for child in sorted(servers.iterdir()):
        if child == keep or not child.is_dir():
            continue
        if now - last_used(child) > days * 86400:
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child)
    return removed
