"""Regenerate the shipped vectors of the bundled collection (assistant/data/vectors/).

    .venv/bin/python scripts/ship_vectors.py            # default settings, ~1.5 min on 2 cores
    PAPERS_CHUNK_SIZE=300 .venv/bin/python scripts/ship_vectors.py   # add a table for other settings
    .venv/bin/python scripts/ship_vectors.py --check    # compare a store built from the shipped
                                                        # vectors with one from `ingest --rebuild`

Runs a real ingest of the bundled corpus into a temporary store, with the real embedding model,
and records every vector it stores: the shipped floats are exactly what a first ingest would
compute (same groups, batches and padding). The table goes to `bundled-<key>.npz` and its entry
(model, chunking, batch size, file sha256) replaces the one with the same settings in
manifest.json. Run it after changing the corpus, the chunking code or the embedding model, and
commit both files; tests/test_shipped_vectors.py checks a sample against fresh vectors.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from assistant.assets import sha256_file  # noqa: E402
from assistant.config import Settings  # noqa: E402
from assistant.embeddings import (  # noqa: E402
    MANIFEST,
    SHIPPED_DIR,
    make_embedding_function,
    table_params,
    text_key,
    write_vectors,
)
from assistant.ingest import ingest  # noqa: E402


def record(settings: Settings) -> dict:
    """sha1(text) -> vector for every chunk a fresh ingest of the bundled corpus stores."""
    real = make_embedding_function(settings)
    vectors: dict = {}

    def recording(texts):
        out = real(texts)
        for text, vector in zip(texts, out):
            vectors[text_key(text)] = vector
        return out

    with tempfile.TemporaryDirectory(prefix="ship-vectors-") as tmp:
        store = settings.model_copy(update={"store_dir": Path(tmp) / "store", "chroma_url": None,
                                            "chroma_token": None, "collection": "papers"})
        report = ingest(store, None, embed=recording)
    if len(vectors) != report.chunks:  # two chunks with the same text would share a key
        print(f"note: {report.chunks} chunks, {len(vectors)} distinct texts", file=sys.stderr)
    return vectors


def check(settings: Settings) -> int:
    """Build the bundled store both ways (shipped vectors; `--rebuild`, i.e. the real model) and
    compare the stored vectors and the neighbours and hits of the eval questions."""
    import numpy as np

    from assistant.retrieval import BM25Index, Retriever
    from assistant.store import Store

    real = make_embedding_function(settings)
    questions = [json.loads(line)["question"]
                 for line in (REPO / "evals" / "questions.jsonl").read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory(prefix="ship-vectors-check-") as tmp:
        stores = {}
        for name, rebuild in (("shipped", False), ("real", True)):
            s = settings.model_copy(update={"store_dir": Path(tmp) / name, "chroma_url": None,
                                            "chroma_token": None, "collection": "papers"})
            report = ingest(s, None, rebuild=rebuild)
            print(f"{name:8s} {report.chunks} chunks in {report.seconds:.1f} s "
                  f"(embed calls {report.embed_seconds:.1f} s)")
            stores[name] = (s, Store.open(s))
        got = {name: store._collection.get(include=["embeddings", "documents", "metadatas"])
               for name, (_, store) in stores.items()}
        a, b = ({i: k for k, i in enumerate(g["ids"])} for g in got.values())
        assert a.keys() == b.keys(), "the stores hold different chunk ids"
        ids = sorted(a)
        va = np.asarray(got["shipped"]["embeddings"])[[a[i] for i in ids]]
        vb = np.asarray(got["real"]["embeddings"])[[b[i] for i in ids]]
        same_docs = all(got["shipped"]["documents"][a[i]] == got["real"]["documents"][b[i]]
                        and got["shipped"]["metadatas"][a[i]] == got["real"]["metadatas"][b[i]]
                        for i in ids)
        diff = np.abs(va - vb).max(axis=1)
        print(f"stored vectors: {int((diff == 0).sum())}/{len(ids)} bit-identical, max |diff| "
              f"{diff.max():.3g}; documents and metadata identical: {same_docs}")
        qvecs = real(questions)
        same_dense = same_hits = 0
        for question, qv in zip(questions, qvecs):
            dense = [[(c.chunk_id, sim) for c, sim in store.query(qv, 50)] for _, store in stores.values()]
            same_dense += dense[0] == dense[1]
            hits = [[(h.paper_id, h.score) for h in
                     Retriever(s, store, lambda _q, v=qv: [v], BM25Index.for_store(store)).search(question)]
                    for s, store in stores.values()]
            same_hits += hits[0] == hits[1]
        print(f"eval questions: top-50 dense neighbours (ids and similarities) identical for "
              f"{same_dense}/{len(questions)}; hybrid search hits (ids and scores) identical for "
              f"{same_hits}/{len(questions)}")
    ok = bool((diff == 0).all()) and same_docs and same_dense == same_hits == len(questions)
    print("OK: the shipped vectors store what a real ingest stores" if ok else "MISMATCH")
    return 0 if ok else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true",
                    help="compare stores built with the shipped vectors and for real (writes nothing)")
    args = ap.parse_args(argv)
    settings = Settings()
    if args.check:
        return check(settings)
    params = table_params(settings)
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    print(f"embedding the bundled corpus for real ({params['chunk_size']}/{params['chunk_overlap']}, "
          f"batch {params['embed_batch_size']}) ...", file=sys.stderr, flush=True)
    vectors = record(settings)
    path = SHIPPED_DIR / f"bundled-{key}.npz"
    write_vectors(path, vectors)

    manifest_path = SHIPPED_DIR / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"tables": []}
    tables = [t for t in manifest["tables"] if any(t.get(k) != v for k, v in params.items())]
    tables.append({**params, "file": path.name, "sha256": sha256_file(path), "vectors": len(vectors)})
    manifest = {"format": 1, "key": "sha1 of Chunk.embed_text", "tables": tables}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {len(vectors)} vectors to {path.relative_to(REPO)} "
          f"({path.stat().st_size / 1e6:.1f} MB) and {manifest_path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
