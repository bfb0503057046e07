"""Embeddings from an OpenAI-compatible /v1/embeddings endpoint (PAPERS_EMBED_BASE_URL).

The endpoint is real: llama.cpp's own server from the xllamacpp wheel serving the bundled GGUF
with embeddings on (slow), or, for our retry logic and the store's refusals, a tiny
`http.server` on loopback that answers 503 when told to and hash vectors otherwise.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from assistant import llm
from assistant.answer import Assistant
from assistant.config import Settings
from assistant.embeddings import EndpointEmbedding, make_embedding_function
from assistant.errors import EmbeddingError, StoreMismatchError
from assistant.ingest import ingest
from assistant.store import Store


class Endpoint(ThreadingHTTPServer):
    """/v1/embeddings on loopback: `ok` requests answered (None: all), the rest 503."""

    daemon_threads = True

    def __init__(self, dim: int = 8) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.dim, self.ok, self.fail_first = dim, None, 0
        self.requests = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def vector(self, text: str) -> list[float]:
        seed = int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "little")
        return np.random.default_rng(seed).normal(size=self.dim).tolist()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        server: Endpoint = self.server  # type: ignore[assignment]
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with server.lock:
            server.requests += 1
            n = server.requests
        if n <= server.fail_first or (server.ok is not None and n > server.ok):
            return self._send(503, {"error": {"message": "Loading model", "code": 503}})
        data = [{"object": "embedding", "index": i, "embedding": server.vector(t)}
                for i, t in enumerate(body["input"])]
        self._send(200, {"object": "list", "data": data, "model": body["model"],
                         "usage": {"prompt_tokens": 0, "total_tokens": 0}})

    def _send(self, status: int, payload: dict) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture
def endpoint(monkeypatch):
    monkeypatch.setattr(llm, "EMBED_BACKOFF_S", 0.01)  # 0.01, 0.02, 0.04 s: the logic, not the wait
    server = Endpoint()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def endpoint_settings(url: str, tmp_path, **values) -> Settings:
    return Settings(store_dir=tmp_path / "store", embed_base_url=url, embed_model="hash-8",
                    embed_batch_size=8, embed_concurrency=2, embed_attempts=3, **values)


def papers_file(tmp_path, n: int, start: int = 0):
    """`n` one-chunk papers as JSON Lines."""
    path = tmp_path / "papers.jsonl"
    lines = [json.dumps({"id": f"p{i}", "title": f"Paper number {i} on topic {i % 7}",
                         "abstract": f"We study problem {i} of family {i % 5} and report result {i}."})
             for i in range(start, start + n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------- retries


def test_a_503_is_retried_with_backoff_then_succeeds(endpoint, tmp_path):
    endpoint.fail_first = 2
    embed = EndpointEmbedding(endpoint_settings(endpoint.url, tmp_path))
    vectors = embed(["one", "two", "three"])
    assert endpoint.requests == 3  # two 503s, then the answer
    assert len(vectors) == 3 and vectors[0].shape == (8,)
    assert np.allclose(vectors[1], np.array(endpoint.vector("two")) / np.linalg.norm(endpoint.vector("two")))


def test_after_the_last_attempt_one_line_error(endpoint, tmp_path):
    endpoint.ok = 0
    embed = EndpointEmbedding(endpoint_settings(endpoint.url, tmp_path))
    with pytest.raises(EmbeddingError) as err:
        embed(["one"])
    assert endpoint.requests == 3  # embed_attempts
    message = str(err.value)
    assert "\n" not in message and "failed 3 times" in message and "HTTP 503" in message
    assert endpoint.url in message and "papers ingest" in message


def test_an_unreachable_endpoint_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(llm, "EMBED_BACKOFF_S", 0.01)
    server = Endpoint()  # bound, never served: then closed, so the port refuses
    url = server.url
    server.server_close()
    with pytest.raises(EmbeddingError) as err:
        EndpointEmbedding(endpoint_settings(url, tmp_path))(["one"])
    assert "\n" not in str(err.value) and "connection refused" in str(err.value)


def test_an_endpoint_without_a_model_name_is_refused(tmp_path):
    with pytest.raises(EmbeddingError) as err:
        make_embedding_function(Settings(store_dir=tmp_path, embed_base_url="http://127.0.0.1:9/v1"))
    assert "PAPERS_EMBED_MODEL" in str(err.value) and "\n" not in str(err.value)


# --------------------------------------------------------------------------- ingest


def test_a_failed_batch_stops_ingest_and_a_rerun_resumes(endpoint, tmp_path):
    settings = endpoint_settings(endpoint.url, tmp_path)
    source = papers_file(tmp_path, 70)
    endpoint.ok = 8  # 8 requests of 8 texts: the first group (64 chunks), then 503s
    with pytest.raises(EmbeddingError) as err:
        ingest(settings, [source])
    assert "\n" not in str(err.value)
    store = Store.open(settings)
    assert store.count() == 64  # the first group, whole; nothing of the failed one
    assert store.chunks_without_vector() == []
    assert all(st.complete for st in store.paper_states().values())

    endpoint.ok = None
    report = ingest(settings, [source])
    assert (report.added, report.unchanged, report.chunks) == (6, 64, 70)
    hits = Assistant(settings).search("problem 69 family 4", k=3)
    assert hits and hits[0].title == "Paper number 69 on topic 6"  # the query went through the endpoint


# --------------------------------------------------------------------------- refusals


def test_a_store_written_by_an_endpoint_refuses_other_embedders(endpoint, tmp_path):
    settings = endpoint_settings(endpoint.url, tmp_path)
    ingest(settings, [papers_file(tmp_path, 3)])
    meta = Store.open(settings)._collection.metadata
    assert (meta["embedding_model"], meta["embedding_kind"], meta["dimension"]) == ("hash-8", "endpoint", 8)

    minilm = Settings(store_dir=settings.store_dir)
    for attempt in (lambda: Store.open(minilm), lambda: Assistant(minilm).search("problem"),
                    lambda: ingest(minilm, [papers_file(tmp_path, 3)])):
        with pytest.raises(StoreMismatchError) as err:
            attempt()
        message = str(err.value)
        assert "\n" not in message and "hash-8 (endpoint, 8 dimensions)" in message
        assert "PAPERS_EMBED_MODEL=hash-8" in message and "papers ingest --rebuild" in message

    other = settings.model_copy(update={"embed_model": "other-model"})
    with pytest.raises(StoreMismatchError, match="other-model"):
        Store.open(other)

    endpoint.dim = 16  # the same name, but the server now gives other vectors
    with pytest.raises(StoreMismatchError, match="16 dimensions"):
        Assistant(settings).search("problem")


def test_a_minilm_store_refuses_an_endpoint(bundled_store, tmp_path):
    shutil.copytree(bundled_store.store_dir, tmp_path / "store")
    settings = endpoint_settings("http://127.0.0.1:9/v1", tmp_path)  # never reached
    with pytest.raises(StoreMismatchError) as err:
        Assistant(settings).search("stability gap")
    message = str(err.value)
    assert "\n" not in message and "all-MiniLM-L6-v2-int8 (in-process, 384 dimensions)" in message
    assert "unset PAPERS_EMBED_BASE_URL" in message and "papers ingest --rebuild" in message


def test_an_empty_store_of_a_failed_first_ingest_takes_the_next_embedder(endpoint, tmp_path):
    endpoint.ok = 0
    settings = endpoint_settings(endpoint.url, tmp_path)
    source = papers_file(tmp_path, 2)
    with pytest.raises(EmbeddingError):
        ingest(settings, [source])
    minilm = Settings(store_dir=settings.store_dir)
    report = ingest(minilm, [source], embed=lambda texts: [np.ones(384, np.float32) / 384**0.5] * len(texts))
    assert report.chunks == 2
    assert Store.open(minilm)._collection.metadata["embedding_kind"] == "in-process"


def test_rebuild_re_embeds_with_the_new_embedder(endpoint, tmp_path):
    source = papers_file(tmp_path, 3)
    minilm = Settings(store_dir=tmp_path / "store")
    ingest(minilm, [source], embed=lambda texts: [np.ones(384, np.float32) / 384**0.5] * len(texts))
    settings = endpoint_settings(endpoint.url, tmp_path)
    report = ingest(settings, [source], rebuild=True)
    assert report.chunks == 3
    assert Store.open(settings)._collection.metadata["embedding_kind"] == "endpoint"


# --------------------------------------------------------------------------- a real server


@pytest.mark.slow
def test_llama_cpp_embeddings_endpoint_end_to_end(real_model, tmp_path):
    """llama.cpp's server (xllamacpp) with embeddings on, serving the bundled GGUF: ingest,
    search, and a MiniLM search of that store refused. 12-28 s on 2 busy cores."""
    from assistant.local_server import LocalServer

    base = Settings(store_dir=tmp_path / "store", local_threads=2, local_ctx=2048, local_parallel=2)
    with LocalServer(base, embedding=True) as server:
        settings = base.model_copy(update={"embed_base_url": server.base_url, "embed_model": "qwen-gguf",
                                           "embed_batch_size": 2, "embed_concurrency": 2})
        report = ingest(settings, [papers_file(tmp_path, 4)])
        assert (report.added, report.chunks) == (4, 4)
        meta = Store.open(settings)._collection.metadata
        assert meta["embedding_kind"] == "endpoint" and meta["dimension"] == 1536  # Qwen2.5-1.5B
        hits = Assistant(settings).search("problem 2 of family 2", k=2)
        assert hits[0].title == "Paper number 2 on topic 2" and hits[0].dense_similarity is not None
    with pytest.raises(StoreMismatchError, match="qwen-gguf"):
        Assistant(Settings(store_dir=settings.store_dir)).search("problem")
