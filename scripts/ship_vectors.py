"""Regenerate the shipped vectors of the bundled collection (assistant/data/vectors/).

    .venv/bin/python scripts/ship_vectors.py            # default settings, ~1.5 min on 2 cores
    PAPERS_CHUNK_SIZE=300 .venv/bin/python scripts/ship_vectors.py   # add a table for other settings

Runs a real ingest of the bundled corpus into a temporary store, with the real embedding model,
and records every vector it stores: the shipped floats are exactly what a first ingest would
compute (same groups, batches and padding). The table goes to `bundled-<key>.npz` and its entry
(model, chunking, batch size, file sha256) replaces the one with the same settings in
manifest.json. Run it after changing the corpus, the chunking code or the embedding model, and
commit both files; tests/test_shipped_vectors.py checks a sample against fresh vectors.
"""

from __future__ import annotations

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


def main() -> int:
    settings = Settings()
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
