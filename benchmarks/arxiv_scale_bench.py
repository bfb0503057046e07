"""Ingest of a synthetic arXiv-format snapshot: peak memory and records/s at two sizes.

    nice -n 10 .venv/bin/python benchmarks/arxiv_scale_bench.py                 # 200k and 20k
    nice -n 10 .venv/bin/python benchmarks/arxiv_scale_bench.py --sizes 50000 10000

Each size runs in its own process (peak RSS = that process's ru_maxrss): a deterministic
snapshot in the format of Kaggle's arxiv-metadata-oai-snapshot.json (one JSON object a line:
id, authors, title and abstract with LaTeX and ~80-column wrapping, categories, versions,
update_date, ...) is written to a temp dir, then `assistant.ingest.ingest` reads it with the
real reader (PaperStream), chunks it with the real chunker and writes the real Chroma store and
BM25 index. Goal: peak RSS < 1.5 GB, and about the same at both sizes.

    nice -n 10 .venv/bin/python benchmarks/arxiv_scale_bench.py --server --sizes 100000

`--server`: the store is a `chroma run` on loopback (started per size, its data in the temp
dir), so the ingest process holds no HNSW index: the client's peak RSS, and the server's RSS at
the end, are printed apart.

THE EMBEDDING IS A DETERMINISTIC CHEAP FUNCTION (a hash-seeded random unit vector per text), not
the model: this measures the pipeline's memory and throughput, not MiniLM (see ingest_bench.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_WORDS = (
    "graph kernel sparse latent token robust causal convex policy reward signal spectral manifold "
    "protein molecule speech audio image video lidar radar satellite tabular market weather "
    "climate traffic legal medical clinical genome circuit compiler theorem proof dialogue "
    "translation summary retrieval ranking caching pruning quantized federated private adversarial "
    "contrastive diffusion recurrent attention memory planning navigation grasping transformer "
    "estimator bound regret sample complexity convergence gradient stochastic variational"
).split()
_CATS = "cs.CL cs.LG cs.AI cs.CV stat.ML math.OC physics.comp-ph q-bio.QM eess.AS hep-th".split()


def _wrap(text: str, width: int = 80) -> str:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "\n".join(lines + [line])


def record(i: int) -> dict:
    """The i-th synthetic snapshot record (deterministic: seeded by i)."""
    rng = random.Random(i)
    words = lambda n: " ".join(rng.choice(_WORDS) for _ in range(n))  # noqa: E731
    sentences = [f"We study {words(rng.randint(6, 14))} for $x_{{{i % 97}}}^2$ settings."]
    sentences += [f"{words(rng.randint(8, 20)).capitalize()}." for _ in range(rng.randint(4, 8))]
    sentences.insert(2, f"Our \\emph{{{words(2)}}} method improves {words(3)} by {i % 41}%.")
    yymm = f"{7 + i % 17:02d}{1 + i % 12:02d}"
    return {
        "id": f"{yymm}.{i % 100000:05d}",  # unique up to 1.7M records (100000 % 17 != 0)
        "submitter": f"Author {i % 1000}",
        "authors": f"A. Author{i % 1000}, B. Writer{i % 313} and C. Coauthor{i % 71}",
        "title": _wrap(f"On {words(rng.randint(3, 8))} number {i}", 70),
        "comments": f"{rng.randint(4, 30)} pages",
        "journal-ref": None,
        "doi": None,
        "report-no": None,
        "categories": " ".join(rng.sample(_CATS, rng.randint(1, 3))),
        "license": None,
        "abstract": "  " + _wrap(" ".join(sentences)) + "\n",
        "versions": [{"version": "v1", "created": f"Mon, 2 Apr 20{7 + i % 17:02d} 12:00:00 GMT"}],
        "update_date": f"20{7 + i % 17:02d}-0{1 + i % 9}-1{i % 10}",
        "authors_parsed": [[f"Author{i % 1000}", "A.", ""]],
    }


def write_snapshot(path: Path, n: int) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps(record(i)) + "\n")


def cheap_embed(texts):
    """BENCHMARK ONLY: a deterministic unit vector per text, seeded by its hash (no model)."""
    import hashlib

    import numpy as np

    out = np.empty((len(texts), 384), dtype=np.float32)
    for j, text in enumerate(texts):
        seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
        out[j] = np.random.default_rng(seed).standard_normal(384, dtype=np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(n: int, root: Path) -> None:
    """Run one ingest of `n` records; print one JSON line of figures."""
    from assistant.config import Settings
    from assistant.ingest import ingest

    snapshot = root / "arxiv-metadata-oai-snapshot.json"
    write_snapshot(snapshot, n)
    settings = Settings(store_dir=root / "store", cache_dir=Path(os.environ["PAPERS_CACHE_DIR"]),
                        chroma_url=os.environ.get("BENCH_CHROMA_URL") or None, chroma_token=None)
    peak_stream = 0.0
    first_progress = None
    t0 = time.perf_counter()

    def progress(done: int, total: int) -> None:
        nonlocal peak_stream, first_progress
        if first_progress is None:
            first_progress = time.perf_counter() - t0
        peak_stream = max(peak_stream, _rss_mb())
        if done and done % 20000 < 40:
            print(f"    {done}/{total} papers, {_rss_mb():.0f} MB", file=sys.stderr, flush=True)

    report = ingest(settings, [snapshot], progress=progress, embed=cheap_embed)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"records": n, "papers": report.papers, "chunks": report.chunks,
                      "seconds": round(seconds, 1), "records_per_s": round(n / seconds, 1),
                      "first_progress_s": round(first_progress or 0, 1),
                      "peak_rss_streaming_mb": round(peak_stream), "peak_rss_mb": round(peak),
                      "skipped": report.skipped}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200_000, 20_000])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--server", action="store_true", help="ingest into `chroma run` on loopback")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.root)
        return
    print("NOTE: the embedding is a deterministic cheap hash function (benchmark only), not "
          "MiniLM: figures measure reading, chunking, Chroma and BM25, not the model.")
    cache = Path(os.environ.get("PAPERS_CACHE_DIR") or tempfile.mkdtemp(prefix="papers-cache-"))
    env = {**os.environ, "PAPERS_CACHE_DIR": str(cache),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix=f"arxiv-{n}-") as tmp:
            print(f"{n} records ...", flush=True)
            server = None
            if args.server:
                sys.path.insert(0, str(ROOT / "benchmarks"))
                from server_client import LOOPBACK, rss_mb, start_server

                server, url = start_server(Path(tmp) / "server")
                env = {**env, **LOOPBACK, "BENCH_CHROMA_URL": url}
            try:
                done = subprocess.run([sys.executable, __file__, "--child", str(n), "--root", tmp],
                                      env=env, stdout=subprocess.PIPE, text=True)
            finally:
                if server is not None:
                    print(f"  the server (`chroma run`) at the end: RSS {rss_mb(server.pid):,.0f} MB")
                    server.terminate()
                    server.wait(timeout=60)
            if done.returncode != 0:
                print(f"  failed (exit {done.returncode})")
                continue
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"  {r['records']} records -> {r['papers']} papers, {r['chunks']} chunks in "
                  f"{r['seconds']} s: {r['records_per_s']} records/s; first progress after "
                  f"{r['first_progress_s']} s; peak RSS {r['peak_rss_mb']} MB "
                  f"({r['peak_rss_streaming_mb']} MB while streaming, before the BM25 build)",
                  flush=True)


if __name__ == "__main__":
    main()
