"""Shared helpers for the benchmark scripts: tmp settings, timing, load, tables.

Every benchmark prints figures; none of them asserts on time. Numbers from a shared 2-core
machine are noisy, so each script measures its own baseline in the same run and prints the
machine load (os.getloadavg) next to the results.

Where things go (never ./store):
    $PAPERS_BENCH_ROOT (default: <tmp>/paper-assistant-bench)
        cache/            PAPERS_CACHE_DIR of the benchmarks (staged MiniLM + tiktoken files)
        bundled-<key>/    a store of the bundled corpus, built once by ingest and reused by
                          search_bench / cold_search / answer_bench (key: corpus, chunking,
                          embedding model and the source of the modules that shape a store)
Scratch stores (ingest_bench, the synthetic store) go to fresh tempfile.mkdtemp() folders that
are removed afterwards unless --keep is given.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QUESTIONS = REPO / "evals" / "questions.jsonl"


# --- where -----------------------------------------------------------------------------------
def bench_root() -> Path:
    root = Path(os.environ.get("PAPERS_BENCH_ROOT") or Path(tempfile.gettempdir()) / "paper-assistant-bench")
    root.mkdir(parents=True, exist_ok=True)
    return root


def default_cache_dir() -> Path:
    return bench_root() / "cache"


def make_settings(store_dir: Path | str, cache_dir: Path | str | None = None, **overrides):
    """Settings for a local store at `store_dir` (never a Chroma server, whatever the env says)."""
    from assistant.config import Settings

    return Settings(store_dir=Path(store_dir), cache_dir=Path(cache_dir or default_cache_dir()),
                    chroma_url=None, chroma_token=None, **overrides)


def scratch_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"pab-{prefix}-", dir=bench_root()))


def _store_key(settings) -> str:
    from assistant.corpus import bundled_paths
    from assistant.embeddings import MODEL_NAME

    digest = hashlib.sha256(f"{MODEL_NAME}|{settings.chunk_size}|{settings.chunk_overlap}".encode())
    for path in sorted(bundled_paths()):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    for module in ("corpus", "chunking", "store", "ingest", "retrieval", "types"):
        digest.update((REPO / "assistant" / f"{module}.py").read_bytes())
    return digest.hexdigest()[:12]


def bundled_store(cache_dir: Path | str | None = None, store_dir: Path | str | None = None,
                  quiet: bool = False):
    """Settings of a store holding the bundled corpus: `store_dir` if given, else the shared
    benchmark store (built by `assistant.ingest.ingest` the first time, ~1-2 min on 2 cores;
    later calls only re-ingest, which finds nothing to do)."""
    from assistant.ingest import ingest

    probe = make_settings(Path("."), cache_dir)
    folder = Path(store_dir) if store_dir else bench_root() / f"bundled-{_store_key(probe)}"
    settings = make_settings(folder, cache_dir)
    fresh = not (folder / "chroma.sqlite3").exists()
    if fresh and not quiet:
        print(f"building the bundled store at {folder} (once; ~1-2 min) ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    report = ingest(settings)
    if fresh and not quiet:
        print(f"  built: {report.papers} papers, {report.chunks} chunks in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr, flush=True)
    return settings


# --- timing ----------------------------------------------------------------------------------
class Timer:
    def __init__(self) -> None:
        self.seconds = 0.0

    def __float__(self) -> float:
        return self.seconds


@contextmanager
def timed():
    t = Timer()
    start = time.perf_counter()
    try:
        yield t
    finally:
        t.seconds = time.perf_counter() - start


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100), like numpy's default."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --- load / environment ----------------------------------------------------------------------
def load() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:  # not available on this platform
        return (float("nan"),) * 3


def load_str(values: tuple[float, float, float] | None = None) -> str:
    one, five, fifteen = values or load()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1/5/15 min) on {os.cpu_count()} cores"


def header(title: str) -> None:
    print(f"# {title}")
    print(f"date: {datetime.now().isoformat(timespec='seconds')}   python {platform.python_version()}"
          f"   {platform.machine()}")
    print(f"load before: {load_str()}")
    print("note: shared machine; ratios against a baseline measured in the same run are the "
          "figures to compare, absolute times move with the load.")
    print()


def footer() -> None:
    print()
    print(f"load after: {load_str()}")


# --- output ----------------------------------------------------------------------------------
def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:  # nan
            return "-"
        return f"{value:.{digits}f}"
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence], digits: int = 3) -> None:
    cells = [[str(h) for h in headers]] + [[fmt(v, digits) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def ms(seconds: float) -> float:
    return seconds * 1000.0


def read_questions(path: Path = QUESTIONS) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def goal(ok: bool) -> str:
    return "meets goal" if ok else "MISSES goal"
