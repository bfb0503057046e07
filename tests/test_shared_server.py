"""Many clients, one model server; faults met through `papers ask` and `papers chat` (issue 17,
items 6 and 7).

The stage is a loopback HTTP server that answers as llama.cpp's does: `/slots` (which slots are
answering) and streamed chat completions. What is tested is real code: `papers ask` looks at
`/slots` before asking and says when its question waits in the queue, then answers. The figures
for 8 clients against a real `papers llm serve` with 2 slots come from benchmarks/load_bench.py.
"""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import subprocess
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from test_store import papers, start_papers

from assistant.local_server import slot_status

QUESTION = "Which papers study the stability gap?"
QUEUED = "is busy (2 of 2 slots answering): your question waits in its queue and starts when a slot frees."


class Stage:
    """What a llama.cpp server shows: `slots` (is_processing per slot) and a line per request."""

    def __init__(self, slots: int = 2) -> None:
        self.busy = [False] * slots
        self.slots_field = "is_processing"
        self.asked = 0
        self.looked = 0
        self.release = threading.Event()
        self.release.set()


@contextmanager
def stage_server(stage: Stage):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self):
            if self.path.split("?")[0] != "/slots" or stage.slots_field is None:
                self._send(404, "application/json", b'{"error": "not found"}')
                return
            stage.looked += 1
            slots = [{"id": i, stage.slots_field: busy} for i, busy in enumerate(stage.busy)]
            self._send(200, "application/json", json.dumps(slots).encode())

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            stage.release.wait(60)
            stage.asked += 1
            events = [{"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                      for piece in ("This paper studies", " the stability gap.")]
            events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                           "usage": {"prompt_tokens": 50, "completion_tokens": 8, "total_tokens": 58}})
            body = "".join(f"data: {json.dumps({'id': 'c', 'object': 'chat.completion.chunk', 'model': 'm', **e})}\n\n"
                           for e in events) + "data: [DONE]\n\n"
            self._send(200, "text/event-stream", body.encode())

        def _send(self, status: int, kind: str, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def store_copy(tmp_path, bundled_store):
    store_dir = tmp_path / "store"
    shutil.copytree(bundled_store.store_dir, store_dir)
    return store_dir


def test_slot_status_reads_llama_cpp_and_nothing_else():
    stage = Stage(slots=3)
    stage.busy[1] = True
    with stage_server(stage) as url:
        assert slot_status(url) == (1, 3)
        stage.slots_field = "state"  # older llama.cpp: 0 idle, 1 processing
        stage.busy = [1, 1, 0]
        assert slot_status(url) == (2, 3)
        stage.slots_field = None  # Ollama, vLLM, OpenAI: no /slots
        assert slot_status(url) is None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    assert slot_status(f"http://127.0.0.1:{closed}/v1") is None
    assert slot_status("https://api.example.invalid/v1") is None  # not looked at: not plain http


def test_ask_says_when_it_waits_in_the_servers_queue(store_copy):
    stage = Stage(slots=2)
    with stage_server(stage) as url:
        stage.busy = [True, True]
        done = papers("ask", QUESTION, store_dir=store_copy, PAPERS_LLM_BASE_URL=url)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        assert [line for line in done.stderr.splitlines() if "busy" in line] == [
            f"The model server at {url} {QUEUED}"]
        assert "stability gap" in done.stdout.lower() and stage.asked >= 1
        stage.busy = [True, False]
        done = papers("ask", QUESTION, store_dir=store_copy, PAPERS_LLM_BASE_URL=url)
        assert done.returncode == 0 and "busy" not in done.stderr


def test_chat_says_when_a_question_waits_in_the_servers_queue(store_copy):
    stage = Stage(slots=2)
    with stage_server(stage) as url:
        stage.busy = [True, True]
        command, env = _chat(store_copy, url)
        done = subprocess.run(command, env=env, input=f"{QUESTION}\n", capture_output=True,
                              text=True, timeout=300)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert [line for line in done.stderr.splitlines() if "busy" in line] == [
        f"The model server at {url} {QUEUED}"]
    assert "stability gap" in done.stdout.lower() and "busy" not in done.stdout


def test_concurrent_clients_each_answer_or_say_they_wait(store_copy):
    """4 `papers ask` at once while both slots answer: each says it waits, then each answers
    once the slots free (the stage holds every request until then)."""
    stage = Stage(slots=2)
    stage.busy = [True, True]
    stage.release.clear()
    with stage_server(stage) as url:
        clients = [start_papers("ask", QUESTION, store_dir=store_copy, PAPERS_LLM_BASE_URL=url)
                   for _ in range(4)]
        for client in clients:  # each has looked at /slots and is now waiting for its answer
            line = client.stderr.readline()
            while line and "busy" not in line:
                line = client.stderr.readline()
            assert f"The model server at {url} {QUEUED}" in line
        stage.busy = [False, False]
        stage.release.set()
        results = [client.communicate(timeout=300) for client in clients]
    assert [client.returncode for client in clients] == [0] * 4
    assert all("Traceback" not in err and "stability gap" in out.lower() for out, err in results)
    assert stage.looked == 4 and stage.asked >= 4


# --------------------------------------------------------------------------- faults met in ask/chat


def test_ask_with_the_model_server_down(store_copy):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    done = papers("ask", QUESTION, store_dir=store_copy, PAPERS_LLM_BASE_URL=url,
                  PAPERS_LLM_MAX_RETRIES="0")
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert lines == [f"Error: cannot reach the model server at {url} (connection refused): start it "
                     "with `papers llm serve` or fix PAPERS_LLM_BASE_URL"]


@pytest.mark.parametrize("fault", ["damaged", "locked", "no-vectors"])
def test_store_faults_inside_chat(store_copy, fault, tmp_path):
    """The chat shows the store's one line at start and for each question, and goes on."""
    db = store_copy / "chroma.sqlite3"
    holder = None
    if fault == "damaged":
        db.write_bytes(b"")
        expected = f"the store at {store_copy} is damaged"
    elif fault == "locked":
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        expected = f"the store at {store_copy} is locked by another process"
    else:
        from test_one_writer import lose_vectors

        lose_vectors(store_copy, keep_first=600)  # the last 104 chunks lose their vector
        expected = None
    try:
        stage = Stage(slots=1)
        with stage_server(stage) as url:
            command, env = _chat(store_copy, url)
            done = subprocess.run(command, env=env, input=f"{QUESTION}\n/help\n",
                                  capture_output=True, text=True, timeout=300)
    finally:
        if holder is not None:
            holder.execute("ROLLBACK")
            holder.close()
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    if expected is None:  # reading works; `papers check` says what is wrong
        assert done.returncode == 0 and "stability gap" in done.stdout.lower(), done.stderr
        checked = papers("check", store_dir=store_copy)
        assert checked.returncode == 1 and "104 of 704 chunks" in checked.stderr
        return
    text = " ".join(line.strip() for line in done.stderr.splitlines() if line.strip())
    errors = text.split("error: ")
    assert done.returncode == 1 and errors[0] == "" and len(errors) == 3, done.stderr  # start, question
    assert all(expected in " ".join(e.split()) for e in errors[1:]), errors
    assert "/sources" in done.stdout  # /help still answered


def _chat(store_dir, url) -> tuple[list[str], dict[str, str]]:
    """`papers chat`, piped, behind the loopback-only guard, asking the stage."""
    import os
    import sys

    from netguard import GUARDED_CLI

    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERS_")}
    env.update(PAPERS_STORE_DIR=str(store_dir), PAPERS_CACHE_DIR=os.environ["PAPERS_CACHE_DIR"],
               PAPERS_LLM_BASE_URL=url)
    return [sys.executable, "-c", GUARDED_CLI, "chat"], env
