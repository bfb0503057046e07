"""Embedding-model throughput by batch size and onnxruntime threading (where ingest's time goes).

    .venv/bin/python benchmarks/embed_bench.py                      # ~3-5 min on 2 busy cores
    .venv/bin/python benchmarks/embed_bench.py --groups 2 --rounds 3 --batch-sizes 4,8,32
    .venv/bin/python benchmarks/embed_bench.py --endpoint [URL] --papers 40 --model NAME

--endpoint: ingest throughput (abstracts/s) of the in-process MiniLM and of an OpenAI-compatible
/v1/embeddings endpoint, in one run, on the first --papers bundled abstracts: each a fresh store,
`ingest(..., rebuild=True)` (no shipped vectors). Without a URL it starts llama.cpp's server from
the xllamacpp wheel with embeddings on, serving the bundled chat GGUF (a real endpoint, not a
good retriever). Run it under `flock /tmp/model.lock` where others use the model.

Ingest time is almost all MiniLM (see ingest_bench.py), so this compares ways of running it on
the same texts: the first --groups ingest groups of the bundled corpus (64+ chunks each, embedded
one call per group as ingest does). Variants:
  bN          make_embedding_function with embed_batch_size=N (default threading)
  b32 t1      onnxruntime intra_op_num_threads=1
  b32 nospin  intra-op thread pool without spin-waiting (session.intra_op.allow_spinning=0)
Rounds rotate the order of the variants. Printed: median wall and CPU seconds (process CPU, all
threads: less sensitive to other processes than wall time, but inflated by spin-waiting), the
word pieces the model runs on after padding (exact, load-free), and ratios against b32 (the
current default).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from ingest_bench import corpus_groups, padded_tokens  # noqa: E402


def make_variant(settings, batch: int, threads: int | None, spin: bool):
    from assistant.embeddings import make_embedding_function

    ef = make_embedding_function(settings.model_copy(update={"embed_batch_size": batch}))
    if threads is not None or not spin:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            so.intra_op_num_threads = threads
        if not spin:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        path = os.path.join(ef.DOWNLOAD_PATH, ef.EXTRACTED_FOLDER_NAME, "model.onnx")
        ef.__dict__["model"] = ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])
    ef(["load the session before timing"])
    return ef


def endpoint_vs_minilm(args) -> int:
    """Ingest the same abstracts with MiniLM and with the endpoint; print abstracts/s and the ratio."""
    import json
    import shutil
    from contextlib import nullcontext

    from assistant.corpus import bundled_paths, read_papers
    from assistant.ingest import ingest
    from assistant.local_server import LocalServer

    common.header("ingest throughput: in-process MiniLM vs an embeddings endpoint")
    root = common.scratch_dir("embed-endpoint")
    source = root / "papers.jsonl"
    papers = read_papers(bundled_paths()).papers[: args.papers]
    source.write_text("".join(json.dumps({"title": p.title, "abstract": p.abstract}) + "\n" for p in papers))
    base = common.make_settings(root / "unused", args.cache_dir, local_threads=os.cpu_count() or 2,
                                local_ctx=2048, local_parallel=args.concurrency)
    server = nullcontext() if args.endpoint != "auto" else LocalServer(base, embedding=True)
    rows = []
    with server as srv:
        url = args.endpoint if srv is None else srv.base_url
        kinds = {"in-process MiniLM": {},
                 # A 1.5B model on CPU takes ~2 s per abstract: small batches, a long timeout.
                 f"endpoint {url}": {"embed_base_url": url, "embed_model": args.model,
                                     "embed_concurrency": args.concurrency,
                                     "embed_batch_size": args.batch, "embed_timeout": 600.0}}
        for name, update in kinds.items():
            settings = base.model_copy(update={**update, "store_dir": root / f"store-{len(rows)}"})
            report = ingest(settings, [source], rebuild=True)
            rows.append((name, report.added, report.chunks, report.seconds, report.embed_seconds,
                         report.added / report.seconds))
            print(f"  {name}: {report.seconds:.1f} s, load {common.load()[0]:.2f}", file=sys.stderr, flush=True)
    shutil.rmtree(root, ignore_errors=True)
    common.table(["embedder", "abstracts", "chunks", "ingest s", "embed s", "abstracts/s"], rows, digits=2)
    print(f"endpoint / MiniLM throughput: {rows[1][5] / rows[0][5]:.2f}x "
          f"(MiniLM batch {base.embed_batch_size}; endpoint batch {args.batch}, "
          f"{args.concurrency} requests in flight)")
    common.footer()
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", type=int, default=3, help="ingest groups to embed per variant (default 3)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds over all variants (default 2)")
    ap.add_argument("--batch-sizes", default="8,16,32", help="embed_batch_size values (default 8,16,32)")
    ap.add_argument("--no-threading", action="store_true", help="skip the t1 / nospin variants")
    ap.add_argument("--cache-dir", type=Path, default=None, help="PAPERS_CACHE_DIR (default: benchmark cache)")
    ap.add_argument("--endpoint", nargs="?", const="auto", default=None,
                    help="compare ingest with an embeddings endpoint (URL; none: start llama.cpp's)")
    ap.add_argument("--papers", type=int, default=40, help="abstracts ingested per embedder (--endpoint)")
    ap.add_argument("--model", default="qwen2.5-coder-1.5b-gguf", help="PAPERS_EMBED_MODEL (--endpoint)")
    ap.add_argument("--concurrency", type=int, default=4, help="PAPERS_EMBED_CONCURRENCY (--endpoint)")
    ap.add_argument("--batch", type=int, default=4, help="the endpoint's PAPERS_EMBED_BATCH_SIZE (--endpoint)")
    args = ap.parse_args(argv)
    if args.endpoint:
        return endpoint_vs_minilm(args)

    common.header("embedding model: batch size and threading")
    settings = common.make_settings(common.bench_root() / "unused", args.cache_dir)
    groups = corpus_groups(settings)[: args.groups]
    n = sum(len(g) for g in groups)
    variants = {f"b{b}": (b, None, True) for b in (int(x) for x in args.batch_sizes.split(","))}
    if not args.no_threading:
        variants["b32 t1"] = (32, 1, True)
        variants["b32 nospin"] = (32, None, False)
    print(f"{n} texts in {len(groups)} ingest groups; variants: {', '.join(variants)}")
    models = {name: make_variant(settings, *v) for name, v in variants.items()}
    wall: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    names = list(variants)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            w0, c0 = time.perf_counter(), time.process_time()
            for g in groups:
                models[name](g)
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)
            print(f"  round {r + 1} {name}: {wall[name][-1]:.1f} s wall, {cpu[name][-1]:.1f} s cpu, "
                  f"load {common.load()[0]:.2f}", file=sys.stderr, flush=True)

    base = "b32" if "b32" in wall else names[0]
    bw, bc = common.median(wall[base]), common.median(cpu[base])
    _, bp = padded_tokens(settings.model_copy(update={"embed_batch_size": variants[base][0]}), groups, False)
    rows = []
    for name in names:
        real, padded = padded_tokens(settings.model_copy(update={"embed_batch_size": variants[name][0]}), groups, False)
        w, c = common.median(wall[name]), common.median(cpu[name])
        rows.append((name, w, w / bw, c, c / bc, padded, padded / bp, n / w))
    print()
    common.table(["variant", "wall s", "x b32", "cpu s", "x b32", "padded pieces", "x b32", "texts/s"], rows, digits=2)
    print(f"(unpadded word pieces: {real:,})")
    common.footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
