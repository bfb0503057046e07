"""Would another embedding model retrieve and decide better? MiniLM against its vectors, same run.

    .venv/bin/python benchmarks/embedder_bench.py --vectors other.npz [--grid]
    .venv/bin/python benchmarks/embedder_bench.py --endpoint http://127.0.0.1:8081/v1 --model NAME \
        --save other.npz [--grid]

No model server and no recording: retrieval and the relevance decision only, on the eval store
(as retrieval_bench.py and relevance_bench.py). The other model's vectors replace MiniLM's on
the dense side (the exact nearest `candidates` chunks by cosine); BM25, fusion and the decision
rules are the shipped ones. It prints, for MiniLM and the other model:

  retrieval   R@5 / R@10 / MRR of "hybrid new" per split (answerable questions)
  decision    relevance_bench's figures per split, at the shipped thresholds; with --grid also
              at the dense thresholds searched for the other model on dev only (cosines of
              another model are on another scale), test and test2 only reported

--vectors: an .npz in evals/embeddings.npz's format (sha1 of the text -> float32 vector; see
assistant/embeddings.py write_vectors) holding every chunk's `embed_text` of the bundled corpus
and every question's text (a follow-up: its history and question joined). --endpoint embeds
the missing ones through an OpenAI-compatible /v1/embeddings (the project's EndpointEmbedding)
and --save keeps them. A model with no endpoint, e.g. sentence-transformers in another venv:

    texts = [json line "text" for each line of the file --dump-texts writes]
    vectors = SentenceTransformer(folder).encode(texts, normalize_embeddings=True)
    -> write_vectors(path, {text_key(t): v for t, v in zip(texts, vectors)})
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import relevance_bench  # noqa: E402
from retrieval_bench import Bench, evaluate, read_queries  # noqa: E402

SPLITS = ("dev", "test", "test2", "search")
# The thresholds that compare a cosine: searched again for another model (dev only).
DENSE_GRID = {
    "gate_similarity": [0.40, 0.45, 0.50, 0.55],
    "gate_min_similarity": [0.25, 0.30, 0.35],
    "near_miss_dense": [0.55, 0.60, 0.65, 0.70],
    "list_score_ratio": [0.4, 0.5],
}


def texts_needed(bench: Bench) -> list[str]:
    return [c.embed_text for c in bench.store.iter_chunks()] + [q.text for q in bench.queries]


def other_vectors(args, bench: Bench):
    """text_key -> vector of the other model, for every text the run needs."""
    import numpy as np

    from assistant.embeddings import read_vectors, text_key, write_vectors

    vectors = read_vectors(args.vectors) if args.vectors and args.vectors.is_file() else {}
    missing = list(dict.fromkeys(t for t in texts_needed(bench) if text_key(t) not in vectors))
    if missing and args.endpoint:
        from assistant.embeddings import EndpointEmbedding

        settings = bench.settings.model_copy(update={"embed_base_url": args.endpoint, "embed_model": args.model})
        embed = EndpointEmbedding(settings)
        for i in range(0, len(missing), 64):
            for t, v in zip(missing[i:i + 64], embed(missing[i:i + 64])):
                vectors[text_key(t)] = np.asarray(v, dtype=np.float32)
        missing = []
    if missing:
        raise SystemExit(f"{len(missing)} texts have no vector in {args.vectors}: give --endpoint, "
                         "or embed the texts --dump-texts writes")
    if args.save:
        write_vectors(args.save, vectors)
    return vectors


def dense_lists(bench: Bench, vectors) -> dict[str, list]:
    """Each query's exact nearest chunks by the other model's cosine, as Store.query returns them."""
    import numpy as np

    from assistant.embeddings import text_key

    chunks = list(bench.store.iter_chunks())
    matrix = np.stack([vectors[text_key(c.embed_text)] for c in chunks])
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    out = {}
    for q in bench.queries:
        v = vectors[text_key(q.text)]
        sims = matrix @ (v / np.linalg.norm(v))
        top = np.argsort(-sims, kind="stable")[:bench.settings.candidates]
        out[q.id] = [(chunks[i], float(sims[i])) for i in top]
    return out


def retrieval_rows(bench: Bench, name: str) -> list[tuple]:
    rows = []
    for split in SPLITS:
        qs = [q for q in bench.queries if q.split == split and q.gold]
        for kind in ["all"] + sorted({q.kind for q in qs}):
            group = [q for q in qs if kind == "all" or q.kind == kind]
            r5, r10, mrr = evaluate(bench, "hybrid new", group)
            rows.append((name, split, kind, len(group), f"{r5:.2f} {r10:.2f} {mrr:.2f}"))
    return rows


def decision_rows(db: relevance_bench.DecisionBench, name: str, **overrides) -> list[tuple]:
    rows = []
    for split in SPLITS[:3]:
        qs = [q for q in db.bench.queries if q.split == split]
        f = db.figures(db.run(qs, **overrides))
        rows.append((name, split, len(qs), *(relevance_bench._fmt(f[k]) for k in (
            "far", "abs_recall", "near_recall", "prec", "extra", "list_recall", "cited"))))
    return rows


def best_on_dev(db: relevance_bench.DecisionBench) -> dict:
    """DENSE_GRID searched on dev by relevance_bench's objective."""
    dev = [q for q in db.bench.queries if q.split == "dev"]
    best = None
    for values in itertools.product(*DENSE_GRID.values()):
        cfg = dict(zip(DENSE_GRID, values))
        score = relevance_bench.objective(db.figures(db.run(dev, **cfg)))
        if best is None or score > best[0]:
            best = (score, cfg)
    return best[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vectors", type=Path, help="the other model's vectors (.npz, evals/embeddings.npz format)")
    ap.add_argument("--endpoint", help="an OpenAI-compatible /v1 base URL that embeds what --vectors lacks")
    ap.add_argument("--model", help="the endpoint's model name")
    ap.add_argument("--save", type=Path, help="write the vectors used here to this .npz")
    ap.add_argument("--grid", action="store_true", help="also search the dense thresholds on dev")
    ap.add_argument("--dump-texts", type=Path, help="write the texts to embed (JSON lines) and stop")
    args = ap.parse_args(argv)
    bench = Bench(read_queries(answerable_only=False))
    if args.dump_texts:
        with open(args.dump_texts, "w", encoding="utf-8") as fh:
            for t in dict.fromkeys(texts_needed(bench)):
                fh.write(json.dumps({"text": t}) + "\n")
        return 0
    if not (args.vectors or args.endpoint):
        ap.error("give --vectors or --endpoint")
    minilm = {q.id: q.dense for q in bench.queries}
    other = dense_lists(bench, other_vectors(args, bench))
    common.header("MiniLM against another embedding model: retrieval and the relevance decision")
    retrieval, decision = [], []
    everything = bench.queries
    for name, lists in (("MiniLM", minilm), ("other", other)):
        for q in bench.queries:
            q.dense = lists[q.id]
        retrieval += retrieval_rows(bench, name)
        bench.queries = [q for q in everything if q.split != "search"]
        db = relevance_bench.DecisionBench(bench, bench.settings.k)
        decision += decision_rows(db, f"{name}, shipped thresholds")
        if name == "other" and args.grid:
            cfg = best_on_dev(db)
            decision += decision_rows(db, f"other, {cfg}", **cfg)
        bench.queries = everything
    print("hybrid new, R@5 R@10 MRR")
    common.table(["model", "split", "kind", "n", "R@5 R@10 MRR"], retrieval)
    print()
    common.table(["model", "split", "n", "FAR", "abst.rec", "near", "prec", "extra", "list rec", "|cited|"],
                 decision)
    common.footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
