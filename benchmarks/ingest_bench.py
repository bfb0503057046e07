"""Ingest of the bundled corpus from nothing vs the embedding model alone; then a re-ingest.

    .venv/bin/python benchmarks/ingest_bench.py              # ~3-4 min on 2 busy cores
    .venv/bin/python benchmarks/ingest_bench.py --repeat 2   # alternate the order, take medians
    .venv/bin/python benchmarks/ingest_bench.py --profile    # + where ingest's time goes (cProfile)

Figures (goal in brackets):
  ingest      `assistant.ingest.ingest(settings, rebuild=True)` into an empty tmp store (reads,
              chunks, embeds, upserts into Chroma, builds the BM25 index), from a fresh embedding
              function; rebuild so the model runs (a plain first ingest of the bundled corpus
              reads the shipped vectors instead: benchmarks/first_run_bench.py)
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
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402


def corpus_groups(settings) -> list[list[str]]:
    """The chunk embed_texts of the bundled corpus, grouped exactly as ingest groups them."""
    from assistant.assets import ensure_tiktoken

    ensure_tiktoken(settings.cache_dir)  # chunking needs the staged encodings (else: network)
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


def padded_tokens(settings, groups: list[list[str]], single: bool) -> tuple[int, int]:
    """(real word pieces, word pieces after padding) the model runs on: a load-free work measure.

    Mirrors OfflineMiniLM: each call sorts its texts by length, cuts them into batches of
    embed_batch_size and pads each batch to its longest text (max 256)."""
    from assistant.embeddings import make_embedding_function

    tok = make_embedding_function(settings).tokenizer
    calls = [[t for g in groups for t in g]] if single else groups
    real = padded = 0
    for texts in calls:
        texts = sorted(texts, key=len)
        for i in range(0, len(texts), settings.embed_batch_size):
            encoded = tok.encode_batch(texts[i:i + settings.embed_batch_size])  # padded to the longest
            real += sum(sum(e.attention_mask) for e in encoded)
            padded += sum(len(e.ids) for e in encoded)
    return real, padded


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
        c0 = time.process_time()
        with common.timed() as t:
            report = prof.runcall(ingest, settings, rebuild=True)
        stats = pstats.Stats(prof)
        return t.seconds, time.process_time() - c0, report, settings, folder, stats
    c0 = time.process_time()
    with common.timed() as t:
        report = ingest(settings, rebuild=True)  # the model, not the shipped vectors
    return t.seconds, time.process_time() - c0, report, settings, folder, None


def run_model(settings, groups: list[list[str]], single: bool) -> tuple[float, float]:
    from assistant.embeddings import make_embedding_function

    c0 = time.process_time()
    with common.timed() as t:
        embed = make_embedding_function(settings)
        if single:
            embed([text for g in groups for text in g])
        else:
            for g in groups:
                embed(g)
    return t.seconds, time.process_time() - c0


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
    ingest_cpu, model_cpu, single_cpu = [], [], []
    report = settings = stats = None
    folders = []
    for r in range(max(1, args.repeat)):
        order = ("ingest", "model") if r % 2 == 0 else ("model", "ingest")
        for what in order:
            before = common.load()[0]
            if what == "ingest":
                secs, cpu, report, settings, folder, st = run_ingest(cache_dir, args.profile and stats is None)
                stats = stats or st
                folders.append(folder)
                ingest_s.append(secs)
                ingest_cpu.append(cpu)
                embed_in_ingest.append(report.embed_seconds)
                print(f"  run {r + 1}: ingest {secs:.1f} s, {cpu:.1f} s cpu (embed inside ingest "
                      f"{report.embed_seconds:.1f} s; {report.chunks} chunks) load {before:.2f}", flush=True)
            else:
                secs, cpu = run_model(probe, groups, single=False)
                model_s.append(secs)
                model_cpu.append(cpu)
                print(f"  run {r + 1}: model alone (ingest groups) {secs:.1f} s, {cpu:.1f} s cpu  "
                      f"load {before:.2f}", flush=True)
            loads.append(before)
        if not args.no_single:
            secs, cpu = run_model(probe, groups, single=True)
            single_s.append(secs)
            single_cpu.append(cpu)
            print(f"  run {r + 1}: model alone (one call) {secs:.1f} s, {cpu:.1f} s cpu", flush=True)

    ing, mod = common.median(ingest_s), common.median(model_s)
    emb_in = common.median(embed_in_ingest)
    print()
    ic, mc = common.median(ingest_cpu), common.median(model_cpu)
    rows = [
        ("ingest (from nothing)", ing, ing / mod, ic, ic / mc, ""),
        ("  of which embed calls", emb_in, emb_in / mod, None, None, ""),
        ("  of which the rest", ing - emb_in, (ing - emb_in) / mod, None, None,
         "read+chunk, upsert, BM25, model load"),
        ("model alone, ingest groups", mod, 1.0, mc, 1.0, "baseline"),
    ]
    if single_s:
        one, oc = common.median(single_s), common.median(single_cpu)
        rows.append(("model alone, one call", one, one / mod, oc, oc / mc, "sorted over the whole corpus"))
    common.table(["step", "wall s", "x baseline", "cpu s", "x baseline", "note"], rows, digits=2)
    print(f"ingest / model in process CPU time: {ic / mc:.2f}x (less sensitive to the other processes)")
    ratio = ing / mod
    steady = 1 + (ing - emb_in) / mod
    print(f"\ningest / model = {ratio:.2f}x raw  (goal <= 1.2x: {common.goal(ratio <= 1.2)}); "
          f"{n_texts / ing:.1f} chunks/s ingest, {n_texts / mod:.1f} chunks/s model")
    print(f"1 + (ingest - its embed calls) / model = {steady:.2f}x: the same ratio with the load noise "
          f"of the embed calls taken out (they run the same groups, batches and model as the baseline)")
    real, pad_grouped = padded_tokens(probe, groups, single=False)
    _, pad_single = padded_tokens(probe, groups, single=True)
    print(f"model work (word pieces incl. padding, load-free): ingest groups {pad_grouped:,}, one call "
          f"{pad_single:,}, unpadded {real:,} -> padding adds {100 * (pad_grouped / real - 1):.1f}% "
          f"(grouped) vs {100 * (pad_single / real - 1):.1f}% (one call)")
    print(f"peak RSS of this process: {peak_rss_mb():.0f} MB")

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
