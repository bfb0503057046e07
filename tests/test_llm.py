"""assistant.llm, assistant.local_server and the recording mechanism.

Answers of the real embedded model replay from tests/cassettes/test_llm/ (record them again with
`PAPERS_RECORD=1 .venv/bin/python -m pytest tests/test_llm.py`). Errors the llama.cpp server
cannot produce (404, 401, timeouts, broken streams) come from a tiny real HTTP server on loopback.
"""

from __future__ import annotations

import re

import json
import socket
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from recording import CASSETTES, RECORD_CACHE_DIR_ENV, recorded_settings, replaying
from vcr.errors import CannotOverwriteExistingCassetteException
from vcr.request import Request

from assistant.assets import ensure_gguf
from assistant.config import LOCAL_MODEL, Settings
from assistant.errors import LLMError
from assistant.llm import LLM, Completion
from assistant.local_server import LOCAL_EXTRA_HINT, LocalServer
from assistant.recording import RecordingError, json_body, use_recording

QUESTION = [
    {"role": "system", "content": "Answer in one short sentence."},
    {"role": "user", "content": "What is the capital of France?"},
]
COUNT = [{"role": "user", "content": "Count from 1 to 5, separated by commas."}]
# ~4,200 tokens: more than the embedded model's 4,096-token window.
TOO_LONG = [{"role": "user", "content": "word " * 4200}]


# --- recorded from the real embedded model -------------------------------------------------------
def test_complete(llm_settings):
    with LLM(llm_settings) as llm:
        done = llm.complete(QUESTION, max_tokens=24)
    assert "Paris" in done.text
    assert done.model == LOCAL_MODEL
    assert done.usage.prompt_tokens > 10 and done.usage.completion_tokens > 0


def test_stream_yields_deltas_then_completion(llm_settings):
    with LLM(llm_settings) as llm:
        items = list(llm.stream(COUNT, max_tokens=24))
    *deltas, done = items
    assert len(deltas) >= 5 and all(isinstance(d, str) for d in deltas)
    assert isinstance(done, Completion)
    assert done.text == "".join(deltas) and "1" in done.text and "5" in done.text
    # llama.cpp's own server reports usage at the end of the stream (include_usage).
    assert done.usage.prompt_tokens > 10 and 5 <= done.usage.completion_tokens <= 24


def test_context_too_long(llm_settings):
    # Streamed, llama.cpp answers an empty 200 and drops the connection; LLM asks again without
    # streaming and gets the real 400 (both calls are in the cassette).
    with LLM(llm_settings) as llm, pytest.raises(LLMError) as err:
        list(llm.stream(TOO_LONG, max_tokens=16))
    assert str(err.value) == (
        "the prompt (4230 tokens) exceeds the model's context window; "
        "a longer question or history? the embedded model's is PAPERS_LOCAL_CTX"
    )


# --- a real HTTP server on loopback for what llama.cpp does not produce ---------------------------
def _chunk(content=None, finish=None):
    delta = {} if content is None else {"content": content}
    return {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "fake",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip


def _sse(events) -> bytes:
    lines = (e if isinstance(e, str) else json.dumps(e) for e in events)
    return "".join(f"data: {line}\n\n" for line in lines).encode()


def json_reply(status: int, payload: dict, delay: float = 0.0):
    def respond(handler, request):
        time.sleep(delay)
        _write(handler, status, "application/json", json.dumps(payload).encode())

    return respond


def sse_reply(events, *, cut: bool = False):
    """Stream `events`; with `cut`, promise more bytes than sent and hang up (a crash)."""

    def respond(handler, request):
        data = _sse(events)
        _write(handler, 200, "text/event-stream", data, length=len(data) + 1000 * cut)
        if cut:
            handler.wfile.flush()
            handler.connection.shutdown(socket.SHUT_RDWR)
            handler.close_connection = True

    return respond


def _write(handler, status, content_type, data, length=None):
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data) if length is None else length))
    handler.end_headers()
    handler.wfile.write(data)


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        """A client that hung up first (the timeout test) is expected: no traceback. It came
        after the test had ended and, with xdist, went to the terminal."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def loopback(respond):
    """A real HTTP server on 127.0.0.1; yields (base URL, list of the JSON bodies received)."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            headers = {k.lower(): v for k, v in self.headers.items()}
            received.append({"path": self.path, "headers": headers, "json": body})
            respond(self, body)

        def log_message(self, *args):
            pass

    server = _Server(("127.0.0.1", 0), Handler)
    # A short poll interval: shutdown() waits up to one interval (0.5 s by default).
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1", received
    finally:
        server.shutdown()
        server.server_close()


def _settings(base_url: str, **overrides) -> Settings:
    values = dict(llm_base_url=base_url, llm_model="fake", llm_max_retries=0)
    return Settings(**(values | overrides))


def _error(settings: Settings, messages=QUESTION) -> str:
    with LLM(settings) as llm, pytest.raises(LLMError) as err:
        list(llm.stream(messages, max_tokens=8))
    return str(err.value)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_request_carries_settings_and_server_usage_wins():
    usage = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "fake",
             "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 2,
                                      "total_tokens": 13}}  # fmt: skip
    events = [_chunk("Hi"), _chunk(" there", "stop"), usage, "[DONE]"]
    with loopback(sse_reply(events)) as (url, received):
        done = LLM(_settings(url, temperature=0.3, seed=7)).complete(QUESTION, max_tokens=9)
    assert done == Completion("Hi there", usage=done.usage, model="fake")
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (11, 2)
    sent = received[0]["json"]
    assert received[0]["path"] == "/v1/chat/completions"
    assert sent["stream_options"] == {"include_usage": True} and sent["stream"] is True
    assert (sent["temperature"], sent["seed"], sent["max_tokens"]) == (0.3, 7, 9)
    assert received[0]["headers"]["authorization"] == "Bearer not-needed"


def test_seed_none_is_not_sent():
    with loopback(sse_reply([_chunk("ok", "stop"), "[DONE]"])) as (url, received):
        LLM(_settings(url, seed=None)).complete(QUESTION, max_tokens=4)
    assert "seed" not in received[0]["json"]


def test_unreachable_server():
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    assert _error(_settings(url)) == (
        f"cannot reach the model server at {url} (connection refused): "
        "start it with `papers llm serve` or fix PAPERS_LLM_BASE_URL"
    )


@pytest.mark.parametrize(
    "status,payload",
    [  # OpenAI's wording, and Ollama's
        (404, {"error": {"message": "The model `fake` does not exist", "code": "model_not_found"}}),
        (404, {"error": {"message": 'model "fake" not found, try pulling it first'}}),
    ],
)
def test_model_not_found(status, payload):
    with loopback(json_reply(status, payload)) as (url, _):
        message = _error(_settings(url))
    assert message.startswith(f"the model 'fake' is not served at {url} (HTTP 404)")
    assert "\n" not in message
    assert "PAPERS_LLM_MODEL" in message and f"{url}/models" in message


def test_wrong_path_is_not_a_missing_model():
    with loopback(json_reply(404, {"detail": "Not Found"})) as (url, _):
        assert "PAPERS_LLM_BASE_URL usually ends in /v1" in _error(_settings(url))


@pytest.mark.parametrize("status", [401, 403])
def test_bad_key(status):
    payload = {"error": {"message": "Incorrect API key: sk-sec***", "code": "invalid_api_key"}}
    with loopback(json_reply(status, payload)) as (url, _):
        message = _error(_settings(url, llm_api_key="sk-secret"))
    assert message == (
        f"the model server at {url} rejected the API key (HTTP {status}): "
        "check PAPERS_LLM_API_KEY / OPENAI_API_KEY"
    )


def test_context_too_long_openai_wording():
    message = ("This model's maximum context length is 128000 tokens. However, your messages "
               "resulted in 130512 tokens. Please reduce the length of the messages.")  # fmt: skip
    payload = {"error": {"message": message, "code": "context_length_exceeded"}}
    with loopback(json_reply(400, payload)) as (url, _):
        assert _error(_settings(url)).startswith("the prompt (130512 tokens) exceeds")


def test_timeout():
    with loopback(json_reply(200, {}, delay=1.0)) as (url, _):
        message = _error(_settings(url, llm_timeout=0.2))
    assert message == (
        f"the model server at {url} did not answer within 0.2 s: "
        "raise PAPERS_LLM_TIMEOUT or ask for a shorter answer"
    )


def test_other_status_is_named():
    with loopback(json_reply(500, {"error": {"message": "CUDA out of\n memory"}})) as (url, _):
        assert _error(_settings(url)) == (
            f"the model server at {url} answered HTTP 500: CUDA out of memory"
        )


def test_error_event_mid_stream():
    events = [_chunk("Par"), {"error": {"message": "slot unavailable"}}]
    with loopback(sse_reply(events)) as (url, _), LLM(_settings(url)) as llm:
        stream = llm.stream(QUESTION, max_tokens=8)
        assert next(stream) == "Par"
        with pytest.raises(LLMError, match=r"failed mid-answer: slot unavailable$"):
            next(stream)


def test_connection_broken_mid_stream():
    with loopback(sse_reply([_chunk("Par")], cut=True)) as (url, _), LLM(_settings(url)) as llm:
        stream = llm.stream(QUESTION, max_tokens=8)
        assert next(stream) == "Par"
        with pytest.raises(LLMError, match=f"connection to the model server at {url} broke") as err:
            next(stream)
    assert "\n" not in str(err.value)


def test_openai_by_default_with_a_key_only():
    llm = LLM(Settings(llm_api_key="sk-test"))
    assert llm.model == "gpt-4o-mini"
    assert str(llm._get_client().base_url) == "https://api.openai.com/v1/"  # no request made
    llm.close()


# --- the embedded server -------------------------------------------------------------------------
def test_missing_xllamacpp_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # what find_spec sees when not installed
    with pytest.raises(LLMError) as err:
        LLM(Settings()).complete(QUESTION, max_tokens=4)
    assert str(err.value) == LOCAL_EXTRA_HINT


def test_missing_model_file(tmp_path):
    server = LocalServer(Settings(), model_path=tmp_path / "gone.gguf")
    with pytest.raises(LLMError, match=r"the model file .*gone\.gguf does not exist") as err:
        server.start()
    assert "\n" not in str(err.value)


def test_server_that_dies_names_its_log(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file" * 100)
    server = LocalServer(Settings(local_start_timeout=60), model_path=bad)
    with pytest.raises(LLMError) as err:
        server.start()
    message = str(err.value)
    assert message.startswith("the embedded model server exited during start (code 1); see ")
    assert str(server.log_path) in message and "\n" not in message
    # llama.cpp's own first error line: the cause, not the "failed to init" that follows it.
    assert message.endswith("invalid magic characters: 'not ', expected 'GGUF'")
    assert not server.running and server.log_path.is_file()


# --- the recording mechanism ---------------------------------------------------------------------
def test_body_matches_whatever_the_key_order():
    a = Request("POST", "http://x/v1/chat/completions", b'{"model": "m", "max_tokens": 4}', {})
    b = Request("POST", "http://y/v1/chat/completions", b'{"max_tokens":4,"model":"m"}', {})
    c = Request("POST", "http://y/v1/chat/completions", b'{"max_tokens":5,"model":"m"}', {})
    json_body(a, b)
    with pytest.raises(AssertionError, match="max_tokens"):
        json_body(a, c)


def test_unplayed_recording_fails(tmp_path):
    recorded = yaml.safe_load((CASSETTES / "test_llm" / "test_complete.yaml").read_text())
    recorded["interactions"] *= 2  # the code now asks once where it asked twice
    path = tmp_path / "twice.yaml"
    path.write_text(yaml.safe_dump(recorded))
    settings = _settings("http://127.0.0.1:9/v1", llm_model=LOCAL_MODEL)
    with pytest.raises(RecordingError) as err:
        with use_recording(path, record=False, rerecord="RERECORD-CMD"):
            LLM(settings).complete(QUESTION, max_tokens=24)
    assert "1 of 2 recorded LLM calls" in str(err.value) and "RERECORD-CMD" in str(err.value)


def test_unrecorded_call_names_the_rerecord_command(tmp_path):
    settings = _settings("http://127.0.0.1:9/v1")
    with pytest.raises(CannotOverwriteExistingCassetteException) as err:
        with use_recording(tmp_path / "none.yaml", record=False, rerecord="RERECORD-CMD"):
            LLM(settings).complete(QUESTION, max_tokens=4)
    assert any("re-record with `RERECORD-CMD`" in note for note in err.value.__notes__)


_SECRET_HEADERS = {"authorization", "proxy-authorization", "api-key", "x-api-key", "cookie",
                   "set-cookie", "openai-organization", "openai-project"}
_KEY_LIKE = re.compile(r"\bsk-[A-Za-z0-9_-]{16,}|\bbearer\s+[A-Za-z0-9._~+/=-]{8,}"
                       r"|\b(?:api[_-]?key|token)\b[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9_-]{16,}", re.I)
_HOME_PATH = re.compile(r"(?:/home/|/Users/|/root/|C:\\\\Users)")


def test_cassettes_hold_no_secrets():
    """Every cassette, of the tests and of the evals: no credential headers, loopback hosts
    only, nothing key-like, no home paths."""
    import yaml
    from urllib.parse import urlsplit

    root = CASSETTES.parent.parent
    paths = sorted([*CASSETTES.rglob("*.yaml"), *(root / "evals" / "cassettes").rglob("*.yaml")])
    assert len(paths) >= 50, len(paths)
    for path in paths:
        text = path.read_text(encoding="utf-8")
        assert not _KEY_LIKE.search(text), (path, _KEY_LIKE.search(text).group())
        assert not _HOME_PATH.search(text), (path, _HOME_PATH.search(text).group())
        data = yaml.safe_load(text)
        for interaction in data.get("interactions") or []:
            request, response = interaction["request"], interaction.get("response") or {}
            host = urlsplit(request["uri"]).hostname
            assert host in ("127.0.0.1", "localhost", "::1"), (path, request["uri"])
            for headers in (request.get("headers") or {}, response.get("headers") or {}):
                leaked = {h.lower() for h in headers} & _SECRET_HEADERS
                assert not leaked, (path, leaked)


# --- the real embedded model (slow) ---------------------------------------------------------------
def _first_token_s(llm: LLM, messages) -> float:
    began = time.monotonic()
    stream = llm.stream(messages, max_tokens=8)
    next(stream)
    elapsed = time.monotonic() - began
    stream.close()
    return elapsed


@pytest.mark.slow
def test_embedded_model_lifecycle(real_model):
    """Start the embedded server lazily, answer, stop; prints start time and first-token latency.

    Uses PAPERS_RECORD_CACHE_DIR when set (GGUF already assembled), else the tests' temp cache
    (assembling the GGUF there takes ~10 s).
    """
    cache = {"cache_dir": Path(RECORD_CACHE_DIR_ENV)} if RECORD_CACHE_DIR_ENV else {}
    settings = Settings(**cache)
    assert settings.uses_local_model
    began = time.monotonic()
    ensure_gguf(settings.cache_dir)  # timed apart: once per cache dir, not per start
    assemble_s = time.monotonic() - began
    llm = LLM(settings)
    began = time.monotonic()
    stream = llm.stream(COUNT, max_tokens=24)
    first = next(stream)
    first_s = time.monotonic() - began
    *_, done = stream
    server = llm._server
    assert server is not None and server.running and isinstance(first, str)
    assert done.text.startswith(first) and "5" in done.text
    url = server.base_url
    assert server.start() == url  # started once, reused
    assert llm._get_client() is llm._get_client()
    warm_s = _first_token_s(llm, QUESTION)
    print(f"\nGGUF ready in {assemble_s:.1f} s; server ready {server.start_seconds:.2f} s after "
          f"launch; first token {first_s:.2f} s after the first request (start included), "
          f"{warm_s:.2f} s on a warm server")  # fmt: skip
    server._proc.kill()  # a crash: the next request starts a new server
    server._proc.wait()
    assert "Paris" in llm.complete(QUESTION, max_tokens=16).text
    assert llm._server is server and server.running
    llm.close()
    assert not server.running
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", server.port)) != 0  # nothing listens any more


def test_llm_replay_fixture_takes_any_path(llm_replay):
    """A cassette named by path replays the model's recorded words, streamed as recorded."""
    with llm_replay("test_llm/llm_replay_fixture.yaml") as settings:
        deltas = list(LLM(settings).stream(QUESTION, max_tokens=4))
    *words, done = deltas
    assert "".join(words) == done.text == "The capital of France"
    assert done.usage.completion_tokens == 4


def test_replaying_context_manager(request, recording_base_url):
    settings = recorded_settings(recording_base_url)
    with replaying("test_llm/replaying_helper.yaml", nodeid=request.node.nodeid):
        done = LLM(settings).complete(COUNT, max_tokens=4)
    assert done.text == "1, 2"


def test_recording_plugin_paths(request):
    from recording import cassette_path, rerecord_command

    path = CASSETTES / "test_llm" / "test_recording_plugin_paths.yaml"
    assert cassette_path(request.node) == path
    assert rerecord_command(request.node.nodeid) == (
        "PAPERS_RECORD=1 .venv/bin/python -m pytest tests/test_llm.py::test_recording_plugin_paths"
    )


# --------------------------------------------------------------------------- serving safely


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])
def test_serve_refuses_a_non_loopback_host_without_a_key(tmp_path, host):
    """`papers llm serve --host H`: one line, exit 1, and no model server started (no GGUF needed)."""
    from test_cli_search import papers

    done = papers("llm", "serve", "--host", host, "--port", "9", store_dir=tmp_path / "store",
                  cache_dir=tmp_path / "cache")
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr
    assert f"refusing to serve on {host} without an API key" in done.stderr
    assert not (tmp_path / "cache" / "logs").exists()  # no server was launched


def test_serve_host_rule():
    from assistant.local_server import check_serve_host

    for host in ("127.0.0.1", "localhost", "::1"):
        check_serve_host(host, None)
    check_serve_host("0.0.0.0", "a-key")
    with pytest.raises(LLMError, match="--api-key"):
        check_serve_host("0.0.0.0", "")
