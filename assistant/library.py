"""One library from any folder: where it is, what it holds, and the bundled one on first use.

Libraries live side by side in the per-user data folder (`data_dir/libraries/<name>`, one
Chroma store each; the name is a Chroma collection with PAPERS_CHROMA_URL). `Settings` decides
which one a process uses (config.py: --store / PAPERS_STORE_DIR, else ./store where it holds a
library, else the named library). The CLI and the Python API share what is here, so
`papers chat` and `Assistant()` find, or build, the same library.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .config import DEFAULT_LIBRARY, LEGACY_STORE, Settings, check_library_name
from .errors import PapersError, StoreMissingError
from .store import Store, describe_location

Say = Callable[[str], None]


def libraries_dir(settings: Settings) -> Path:
    return settings.data_dir / "libraries"


def with_library(settings: Settings, library: str | None = None,
                 store: Path | None = None) -> Settings:
    """`settings` for `--library NAME` or `--store DIR` (either beats PAPERS_STORE_DIR)."""
    if store is not None:
        return Settings(store_dir=store)
    if library is None:
        return settings
    return Settings(library=check_library_name(library), store_dir=None)


def exists(settings: Settings) -> bool:
    """Whether the embedded store's database is there (a server's collection: assumed)."""
    return bool(settings.chroma_url) or (settings.store_dir / "chroma.sqlite3").is_file()


def builds_bundled(settings: Settings) -> bool:
    """The default library is built from the bundled collection on first use; a store named
    by path or a named library never is (a mistyped name must not fill a new folder)."""
    return (not settings.chroma_url and settings.store_origin == "library"
            and settings.library == DEFAULT_LIBRARY)


def ensure_library(settings: Settings, say: Say | None = None) -> None:
    """Before answering: where the default library does not exist yet, ingest the bundled
    collection into it (a few seconds: its vectors ship with the package), telling `say`.

    Any other missing store is left to `Store.open`, whose error says how to build it.
    """
    if exists(settings) or not builds_bundled(settings):
        return
    from .ingest import ingest

    say = say or (lambda line: None)
    say(f"No library at {settings.store_dir} yet: ingesting the bundled collection "
        "(399 papers, a few seconds, once)...")
    report = ingest(settings)
    say(f"Stored {report.papers} papers ({report.chunks} chunks) in {report.seconds:.0f} s.")


def location_note(settings: Settings) -> str | None:
    """One line saying that a ./store found in the working folder is used, and how to move it;
    None for every other location."""
    if settings.store_origin != "cwd":
        return None
    here, home = settings.store_dir, libraries_dir(settings) / DEFAULT_LIBRARY
    if not (home / "chroma.sqlite3").is_file():
        return (f"Using the library in {here} (found in this folder), not the per-user one; "
                f"to use it from any folder, move it there: mv {here} {home}")
    aside = libraries_dir(settings) / LEGACY_STORE
    return (f"Using the library in {here} (found in this folder); your per-user library {home} "
            f"is not used here (--library {DEFAULT_LIBRARY} uses it); to keep both, "
            f"mv {here} {aside} and use --library {LEGACY_STORE}")


# --------------------------------------------------------------------------- what it holds


def stats(settings: Settings) -> dict:
    """Location, papers and chunks (in all and per source file), embedding model and chunking,
    last ingest. A library that does not exist yet is no error: `build` says how to make it."""
    from .embeddings import embedder_identity

    info: dict = {"library": _name(settings), "store": describe_location(settings),
                  "origin": settings.store_origin}
    try:
        store = Store.open(settings) if exists(settings) else None
    except StoreMissingError:  # a server without the collection, or an empty database
        store = None
    if store is None:
        return {**info, "exists": False, "papers": 0, "chunks": 0, "build": build_hint(settings)}
    papers, per_source = store.source_counts()
    return {
        **info, "exists": True, "papers": papers, "chunks": store.count(),
        "sources": {name: {"papers": p, "chunks": c} for name, (p, c) in per_source.items()},
        "embedding_model": embedder_identity(settings)["embedding_model"], "chunk_size": settings.chunk_size,
        "chunk_overlap": settings.chunk_overlap, "last_ingest": store.last_ingest,
    }


def build_hint(settings: Settings) -> str:
    """The command that builds this library, as the user would type it."""
    where = _option(settings)
    bundled = f"`papers ingest{where}` (the bundled collection)"
    return f"{bundled} or `papers ingest{where} FILE...` (.bib, .ris, .jsonl, .csv)"


def _option(settings: Settings) -> str:
    if settings.store_origin == "explicit" and not settings.chroma_url:
        return ""  # PAPERS_STORE_DIR or --store: the user already names it
    return "" if settings.library == DEFAULT_LIBRARY else f" --library {settings.library}"


def _name(settings: Settings) -> str | None:
    if settings.chroma_url:
        return settings.collection
    return settings.library if settings.store_origin == "library" else None


@dataclass(frozen=True)
class LibraryInfo:
    name: str | None  # None: a store that is not in the libraries folder (./store, --store)
    store: Path
    papers: int | None  # None: could not be opened (see `problem`)
    chunks: int | None
    used: bool  # the one this process uses
    problem: str | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "store": str(self.store), "papers": self.papers,
                "chunks": self.chunks, "used": self.used, "problem": self.problem}


def libraries(settings: Settings) -> list[LibraryInfo]:
    """Every library in the per-user folder, sorted by name, then the one in use if it lies
    elsewhere (./store, --store, PAPERS_STORE_DIR)."""
    folder = libraries_dir(settings)
    found = sorted(p for p in folder.iterdir() if (p / "chroma.sqlite3").is_file()) \
        if folder.is_dir() else []
    used = settings.store_dir.resolve()
    infos = [_info(settings, p.name, p, p.resolve() == used) for p in found]
    if not settings.chroma_url and used not in {p.resolve() for p in found} and exists(settings):
        infos.append(_info(settings, None, settings.store_dir, True))
    return infos


def _info(settings: Settings, name: str | None, path: Path, used: bool) -> LibraryInfo:
    try:
        store = Store.open(settings.model_copy(update={"store_dir": path}))
        return LibraryInfo(name, path, store.paper_count(), store.count(), used)
    except PapersError as err:
        return LibraryInfo(name, path, None, None, used, str(err))
