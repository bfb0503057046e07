"""Ingest of the bundled corpus from nothing vs the embedding model alone; then a re-ingest.

    .venv/bin/python benchmarks/ingest_bench.py              # ~3-4 min on 2 busy cores
    .venv/bin/python benchmarks/ingest_bench.py --repeat 2   # alternate the order, take medians
    .venv/bin/python benchmarks/ingest_bench.py --profile    # + where ingest's time goes (cProfile)

Figures (goal in brackets):
  ingest      `assistant.ingest.ingest(settings)` into an empty tmp store (reads, chunks, embeds,
              upserts into Chroma, builds the BM25 index), from a fresh embedding function
  model       `make_embedding_function(settings)` (fresh, model load included) over the same
              chunk embed_texts, in the same groups ingest uses (GROUP_CHUNKS per call, papers
              whole), same batch size: what the model alone needs          ratio ingest/model [<= 1.2]
  model-1call the same texts in one call (sorted by length over the whole corpus: least padding)
  re-ingest   ingest again with nothing changed, in-process and as a `papers ingest` process [< 2 s]

Assets (MiniLM, tiktoken) are staged into the benchmark cache and the heavy imports are done
before anything is timed, so both sides pay the same model load and no import.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402


def corpus_groups(settings) -> list[list[str]]:
    """The chunk embed_texts of the bundled corpus, grouped exactly as ingest groups them."""
    from assistant import ingest as ingest_mod
    from assistant.chunking import chunk_paper
    from assistant.corpus import bundled_paths, read_papers

    group_chunks = getattr(ingest_mod, "GROUP_CHUNKS", 64)
    papers = read_papers(bundled_paths()).papers
    groups, group = [], []
    for paper in papers:
        group += [c.embed_text for c in chunk_paper(paper, settings.chunk_size, settings.chunk_overlap)]
        if len(group) >= group_chunks:
            groups.append(group)
            group = []
    if group:
        groups.append(group)
    return groups


def warm_up(settings) -> None:
    from assistant.assets import ensure_minilm, ensure_tiktoken

    ensure_tiktoken(settings.cache_dir)
    ensure_minilm(settings.cache_dir)
    import bm25s  # noqa: F401
    import chromadb  # noqa: F401
    import onnxruntime  # noqa: F401

    from assistant.embeddings import make_embedding_function

    make_embedding_function(settings)(["warm up the page cache and the onnxruntime import"])


def run_ingest(cache_dir: Path, profile: bool):
    from assistant.ingest import ingest

    folder = common.scratch_dir("ingest")
    settings = common.make_settings(folder / "store", cache_dir)
    if profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        with common.timed() as t:
            report = prof.runcall(ingest, settings)
        stats = pstats.Stats(prof)
        return t.seconds, report, settings, folder, stats
    with common.timed() as t:
        report = ingest(settings)
    return t.seconds, report, settings, folder, None


def run_model(settings, groups: list[list[str]], single: bool) -> float:
    from assistant.embeddings import make_embedding_function

    with common.timed() as t:
        embed = make_embedding_function(settings)
        if single:
            embed([text for g in groups for text in g])
        else:
            for g in groups:
                embed(g)
    return t.seconds


def reingest_process(settings) -> float:
    papers = Path(sys.executable).with_name("papers")
    cmd = [str(papers)] if papers.exists() else [sys.executable, "-m", "assistant"]
    env = {**os.environ, "PAPERS_STORE_DIR": str(settings.store_dir),
           "PAPERS_CACHE_DIR": str(settings.cache_dir)}
    env.pop("PAPERS_CHROMA_URL", None)
    with common.timed() as t:
        subprocess.run(cmd + ["ingest"], env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return t.seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=1,
                    help="ingest/model pairs to run, alternating which goes first (default 1)")
    ap.add_argument("--no-single", action="store_true",
                    help="skip the one-call model baseline (saves ~1 min)")
    ap.add_argument("--reingest-runs", type=int, default=3, help="re-ingest repetitions (default 3)")
    ap.add_argument("--no-process", action="store_true", help="skip the `papers ingest` process re-ingest")
    ap.add_argument("--profile", action="store_true",
                    help="run the (first) ingest under cProfile and print the top functions")
    ap.add_argument("--cache-dir", type=Path, default=None, help="PAPERS_CACHE_DIR (default: benchmark cache)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch stores")
    args = ap.parse_args(argv)

    common.header("ingest of the bundled corpus vs the embedding model alone")
    cache_dir = args.cache_dir or common.default_cache_dir()
    probe = common.make_settings(common.bench_root() / "unused", cache_dir)
    warm_up(probe)
    groups = corpus_groups(probe)
    n_texts = sum(len(g) for g in groups)
    print(f"corpus: {n_texts} chunks in {len(groups)} ingest groups; embed_batch_size={probe.embed_batch_size}")

    ingest_s, model_s, single_s, embed_in_ingest, loads = [], [], [], [], []
    report = settings = stats = None
    folders = []
    for r in range(max(1, args.repeat)):
        order = ("ingest", "model") if r % 2 == 0 else ("model", "ingest")
        for what in order:
            before = common.load()[0]
            if what == "ingest":
                secs, report, settings, folder, st = run_ingest(cache_dir, args.profile and stats is None)
                stats = stats or st
                folders.append(folder)
                ingest_s.append(secs)
                embed_in_ingest.append(report.embed_seconds)
                print(f"  run {r + 1}: ingest {secs:.1f} s (embed inside ingest {report.embed_seconds:.1f} s; "
                      f"{report.chunks} chunks) load {before:.2f}", flush=True)
            else:
                secs = run_model(probe, groups, single=False)
                model_s.append(secs)
                print(f"  run {r + 1}: model alone (ingest groups) {secs:.1f} s  load {before:.2f}", flush=True)
            loads.append(before)
        if not args.no_single:
            secs = run_model(probe, groups, single=True)
            single_s.append(secs)
            print(f"  run {r + 1}: model alone (one call) {secs:.1f} s", flush=True)

    ing, mod = common.median(ingest_s), common.median(model_s)
    emb_in = common.median(embed_in_ingest)
    print()
    rows = [
        ("ingest (from nothing)", ing, ing / mod, ""),
        ("  of which embed calls", emb_in, emb_in / mod, ""),
        ("  of which the rest", ing - emb_in, (ing - emb_in) / mod, "read+chunk, upsert, BM25, model load"),
        ("model alone, ingest groups", mod, 1.0, "baseline"),
    ]
    if single_s:
        one = common.median(single_s)
        rows.append(("model alone, one call", one, one / mod, "sorted over the whole corpus"))
    common.table(["step", "seconds", "x baseline", "note"], rows, digits=2)
    ratio = ing / mod
    print(f"\ningest / model = {ratio:.2f}x  (goal <= 1.2x: {common.goal(ratio <= 1.2)}); "
          f"{n_texts / ing:.1f} chunks/s ingest, {n_texts / mod:.1f} chunks/s model")

    # --- re-ingest with nothing changed --------------------------------------------------
    from assistant.ingest import ingest

    re_s = []
    for _ in range(max(1, args.reingest_runs)):
        with common.timed() as t:
            rep = ingest(settings)
        re_s.append(t.seconds)
    if rep.chunks_written:
        print(f"WARNING: the re-ingest wrote {rep.chunks_written} chunks (expected 0)")
    rows = [("re-ingest, in process", common.median(re_s), min(re_s), len(re_s))]
    proc_s = []
    if not args.no_process:
        for _ in range(max(1, args.reingest_runs)):
            proc_s.append(reingest_process(settings))
        rows.append(("re-ingest, `papers ingest` process", common.median(proc_s), min(proc_s), len(proc_s)))
    print()
    common.table(["re-ingest (nothing changed)", "median s", "min s", "runs"], rows, digits=2)
    worst = max(common.median(re_s), common.median(proc_s) if proc_s else 0.0)
    print(f"re-ingest goal < 2 s: {common.goal(worst < 2.0)}")

    if stats is not None:
        print("\ncProfile of the first ingest, top 20 by cumulative time:")
        stats.sort_stats("cumulative").print_stats(20)
        print("top 15 by own time:")
        stats.sort_stats("tottime").print_stats(15)

    if not args.keep:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
    else:
        print("kept:", ", ".join(str(f) for f in folders))
    common.footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
