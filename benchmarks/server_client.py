"""A fresh client of a `chroma run` server holding N chunks: its first search, before and after.

    .venv/bin/python benchmarks/server_client.py --chunks 100000 --before /work/main
    .venv/bin/python benchmarks/server_client.py --chunks 2000 --runs 1     # a quick look

Starts `chroma run` on loopback with its data under --root (built once: N synthetic chunks,
search_bench's texts with random 384-d unit vectors, 2 chunks a paper, written through
Store.upsert; ~10 min per 100,000 chunks on 2 cores), then times, each in a new process
(`--child`), a client's first search (Store.open + BM25Index.for_store + Retriever.search, the
query embedded as a random vector: no model load) and its peak RSS, for the code at --before
(PYTHONPATH) and this checkout:

  fresh       an empty cache: the client downloads what it needs and builds its index
  cached      the cache the fresh run left, the collection unchanged: loaded, nothing fetched
  +ADD        the cache as it was, after a writer added --add chunks (and bumped the
              generation): the old code rebuilds from all N, the new one fetches the changes

Each timed run starts from a copy of the cache it needs, so all runs of a scenario see the same
state. The server is stopped at the end; its data stays under --root for the next run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

LOOPBACK = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
COLLECTION = "bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def heartbeat(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url}/api/v2/heartbeat", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def start_server(root: Path, data: Path | None = None) -> tuple[subprocess.Popen, str]:
    """`chroma run` over `data` (default root/data), logging to root/server.log."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    chroma = Path(sys.executable).parent / "chroma"
    env = {**os.environ, **LOOPBACK, "ANONYMIZED_TELEMETRY": "False"}
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "server.log", "ab") as log:
        proc = subprocess.Popen([str(chroma), "run", "--path", str(data or root / "data"), "--host", "127.0.0.1",
                                 "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, cwd=root)
    deadline = time.monotonic() + 120
    while not heartbeat(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("chroma run did not answer: see " + str(root / "server.log"))
        time.sleep(0.3)
    return proc, url


def settings_for(url: str, cache_dir: Path, collection: str = COLLECTION):
    from assistant.config import Settings

    return Settings(chroma_url=url, chroma_token=None, collection=collection, cache_dir=cache_dir,
                    store_dir=cache_dir / "unused-store")


def write_chunks(store, chunks, metas, seed: int) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    for i in range(0, len(chunks), 5000):
        part = chunks[i:i + 5000]
        vectors = rng.standard_normal((len(part), 384), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        store.upsert(part, vectors, metas[i:i + 5000])
        print(f"  upserted {i + len(part):,}/{len(chunks):,}", file=sys.stderr, flush=True)


def build(url: str, n: int, root: Path, cache_dir: Path) -> None:
    """N synthetic chunks into the server's collection, once (marker file `built-N`)."""
    import search_bench

    from assistant.store import Store

    marker = root / f"built-{n}"
    if marker.exists():
        return
    settings = settings_for(url, cache_dir)
    Store.delete(settings)
    chunks, metas = search_bench.synthetic_records(n, 0, cache_dir)
    store = Store.open(settings, create=True)
    write_chunks(store, chunks, metas, 1)
    store.bump_generation()
    marker.write_text("")


def add_chunks(url: str, n: int, tag: str, cache_dir: Path) -> None:
    """n more synthetic chunks (papers `add<tag>...`), then a new generation: what an ingest does."""
    import search_bench

    from assistant.store import Store

    chunks, metas = search_bench.synthetic_records(n, 7, cache_dir)
    renamed, new_metas = [], []
    for c, m in zip(chunks, metas):
        pid = f"add{tag}-{c.paper_id}"
        renamed.append(replace(c, paper_id=pid, chunk_id=f"{pid}#{c.position}"))
        new_metas.append({**m, "paper_id": pid})
    store = Store.open(settings_for(url, cache_dir))
    store.bump_generation()
    write_chunks(store, renamed, new_metas, 2)
    store.bump_generation()


# --- the timed child ---------------------------------------------------------------------------
def child(url: str, cache_dir: Path, collection: str = COLLECTION) -> None:
    """A new client's first search: prints {"seconds", "open", "index", "search", "rss_mb", "hits"}."""
    import resource

    t0 = time.perf_counter()
    import numpy as np

    from assistant.retrieval import BM25Index, Retriever
    from assistant.store import Store

    t_import = time.perf_counter()
    settings = settings_for(url, cache_dir, collection)
    store = Store.open(settings)
    t_open = time.perf_counter()
    index = BM25Index.for_store(store)
    t_index = time.perf_counter()
    rng = np.random.default_rng(0)

    def embed(texts):
        v = rng.standard_normal((len(texts), 384)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    hits = Retriever(settings, store, embed, index).search("stability gap in continual pre-training")
    t_search = time.perf_counter()
    print(json.dumps({"seconds": t_search - t0, "import": t_import - t0, "open": t_open - t_import,
                      "index": t_index - t_open, "search": t_search - t_index,
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "hits": len(hits)}))


def timed(code: Path, url: str, cache_dir: Path, start_from: Path | None,
          collection: str = COLLECTION) -> dict:
    """One child with `code` first on sys.path, its cache copied from `start_from` (or empty)."""
    shutil.rmtree(cache_dir, ignore_errors=True)
    if start_from is not None:
        shutil.copytree(start_from, cache_dir, symlinks=True)
    else:
        cache_dir.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERS_")}
    env.update(LOOPBACK, PYTHONPATH=f"{code}:{Path(__file__).resolve().parent}")
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", url, str(cache_dir),
                           collection],
                          env=env, cwd=code, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"child failed ({code}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--add", type=int, default=1000, help="chunks a writer adds between the runs")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--before", type=Path, default=None, help="a checkout of the code to compare with")
    ap.add_argument("--root", type=Path, default=Path("/tmp/pab-server-client"))
    ap.add_argument("--query", default="stability gap", help="the query of --existing's `papers search`")
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--existing", type=Path, default=None,
                    help="serve this embedded store's folder (cold_search's syn-N) instead of building one")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child[0], Path(args.child[1]), args.child[2])
        return 0
    if args.existing:
        return existing(args)
    root = args.root / f"n{args.chunks}"
    bench_cache = common.default_cache_dir()
    proc, url = start_server(root)
    try:
        build(url, args.chunks, root, bench_cache)
        if args.build_only:
            return 0
        run_scenarios(args, root, url, bench_cache)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return 0


def seed_cache(work: Path, bench_cache: Path, name: str) -> Path:
    """An empty client cache but for the models and tiktoken files, which are not what is measured."""
    base = work / f"{name}-empty"
    base.mkdir()
    for sub in ("models", "onnx_models", "tiktoken"):  # the chat model, the embedder, tiktoken
        if (bench_cache / sub).exists():
            os.symlink(bench_cache / sub, base / sub)
    return base


def rss_mb(pid: int) -> float:
    """A running process's resident set (VmRSS), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cli_search(url: str, collection: str, cache_dir: Path, start_from: Path, query: str) -> tuple[float, float, int]:
    """A whole new `papers search QUERY` process against the server: (seconds, peak RSS MB, exit)."""
    from cold_search import timed_rss

    shutil.rmtree(cache_dir, ignore_errors=True)
    shutil.copytree(start_from, cache_dir, symlinks=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERS_")}
    env.update(LOOPBACK, PAPERS_CHROMA_URL=url, PAPERS_COLLECTION=collection, PAPERS_CACHE_DIR=str(cache_dir))
    # Run from the cache folder: `-m` puts the working directory first on sys.path.
    return timed_rss([sys.executable, "-m", "assistant", "search", query], env, cache_dir)


def existing(args) -> int:
    """--existing DIR: `chroma run` over a store built elsewhere (cold_search.py --synthetic N
    keeps one), then one client with an empty cache (it downloads every chunk once), --runs
    clients with the cache it left, and --runs whole `papers search` processes with that cache;
    and the server's own RSS after them. The store is only read."""
    from assistant.config import Settings

    collection = Settings.model_fields["collection"].default
    root = args.root / f"existing-{args.existing.name}"
    work = root / "clients"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    here = Path(__file__).resolve().parent.parent
    proc, url = start_server(root, args.existing)
    try:
        common.header(f"clients of `chroma run` serving {args.existing}")
        empty = seed_cache(work, common.default_cache_dir(), "after")
        rows = []
        r = timed(here, url, work / "run", empty, collection)
        rows.append(("client, empty cache", r["seconds"], r["seconds"], r["index"], r["search"], r["rss_mb"]))
        cached = work / "cached"
        shutil.copytree(work / "run", cached, symlinks=True)
        runs = [timed(here, url, work / "run", cached, collection) for _ in range(args.runs)]
        rows.append(("client, cache current", common.median([r["seconds"] for r in runs]),
                     min(r["seconds"] for r in runs), common.median([r["index"] for r in runs]),
                     common.median([r["search"] for r in runs]), common.median([r["rss_mb"] for r in runs])))
        cli = [cli_search(url, collection, work / "run", cached, args.query) for _ in range(args.runs)]
        if any(rc for _, _, rc in cli):
            raise SystemExit(f"papers search failed: exit codes {[rc for _, _, rc in cli]}")
        rows.append((f"papers search {args.query!r}", common.median([c[0] for c in cli]),
                     min(c[0] for c in cli), None, None, common.median([c[1] for c in cli])))
        print(f"{args.runs} runs each (medians); load now {common.load_str()}")
        common.table(["new process", "median s", "min s", "index s", "search s", "peak RSS MB"], rows, digits=2)
        print(f"the server (`chroma run`, pid {proc.pid}) after them: RSS {rss_mb(proc.pid):,.0f} MB")
        common.footer()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return 0


def run_scenarios(args, root: Path, url: str, bench_cache: Path) -> None:
    common.header(f"a fresh client's first search against `chroma run` holding {args.chunks:,} chunks")
    here = Path(__file__).resolve().parent.parent
    codes = {"before": args.before, "after": here} if args.before else {"after": here}
    work = root / "clients"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()

    results: dict[tuple[str, str], list[dict]] = {}
    snapshots: dict[str, Path] = {}
    for name, code in codes.items():
        empty = seed_cache(work, bench_cache, name)
        runs = [timed(code, url, work / "run", empty) for _ in range(args.runs)]
        results[("fresh", name)] = runs
        snapshots[name] = work / f"{name}-cached"
        shutil.copytree(work / "run", snapshots[name], symlinks=True)  # the last fresh run's cache
        results[("cached", name)] = [timed(code, url, work / "run", snapshots[name]) for _ in range(args.runs)]
    add_chunks(url, args.add, str(int(time.time())), bench_cache)
    for name, code in codes.items():
        results[(f"+{args.add:,}", name)] = [timed(code, url, work / "run", snapshots[name])
                                             for _ in range(args.runs)]
    rows = []
    for (scenario, name), runs in results.items():
        med = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
        rows.append((scenario, name, common.median([r["seconds"] for r in runs]),
                     min(r["seconds"] for r in runs), med["index"], med["search"],
                     common.median([r["rss_mb"] for r in runs]), med["hits"]))
    print(f"{args.runs} runs each; load now {common.load_str()}")
    common.table(["scenario", "code", "median s", "min s", "index s", "search s", "peak RSS MB", "hits"],
                 rows, digits=2)
    if args.before:
        for scenario in dict.fromkeys(s for s, _ in results):
            b = common.median([r["seconds"] for r in results[(scenario, "before")]])
            a = common.median([r["seconds"] for r in results[(scenario, "after")]])
            print(f"{scenario}: before/after = {b / a:.1f}x")
    common.footer()


if __name__ == "__main__":
    sys.exit(main())
