"""The chat model behind the answers, over any OpenAI-compatible endpoint; the only module that
imports openai.

Where requests go, from `Settings`:
- `llm_base_url` set: that endpoint (Ollama, vLLM, llama.cpp, `papers llm serve`, ...);
- an API key and no base URL: OpenAI itself;
- neither: the embedded llama.cpp server (local_server.py), started on the first request and
  kept for the life of this LLM object (loading the model takes ~2-3 s; it is never paid twice),
  and started again if it dies. `LLM(settings, server=...)` shares a caller's LocalServer
  instead (used when no base URL is set; the caller stops it).

Every failure the user can act on becomes an `LLMError` with one line saying what to do, also
when it happens in the middle of a streamed answer. openai's own retries give backoff on
429/5xx/connection errors (`llm_max_retries`).

Embeddings from an endpoint (`PAPERS_EMBED_BASE_URL`): `embed_texts` is the HTTP call, with its
own bounded retries; embeddings.py batches and parallelizes it into an embedding function.
"""

from __future__ import annotations

import errno
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import openai
from openai import OpenAI

from .assets import ensure_tiktoken
from .config import Settings
from .errors import EmbeddingError, LLMError
from .local_server import LocalServer
from .types import Usage

# OpenAI's chat format adds about 3 tokens per message (role, separators) plus 3 to prime the
# reply; used only when a server reports no usage (llama.cpp's own server and OpenAI do, with
# `stream_options.include_usage`; some proxies don't).
_TOKENS_PER_MESSAGE = 3
_TOKENS_PER_REPLY = 3
# How servers word "the prompt is too long" (OpenAI, vLLM, llama.cpp, LM Studio, ...).
_CONTEXT_WORDS = re.compile(
    r"context (length|window|size)|maximum context|too many tokens|too long", re.IGNORECASE
)
_PROMPT_TOKENS = (
    re.compile(r"request \((\d+) tokens\) exceeds"),  # llama.cpp's own server
    re.compile(r"\((\d+) in the messages"),  # OpenAI-style wording (llama.cpp, vLLM)
    re.compile(r"resulted in (\d+) tokens"),  # OpenAI
    re.compile(r"Requested tokens \((\d+)\)"),  # llama.cpp's raw message
)


@dataclass(frozen=True)
class Completion:
    """The whole answer of one request."""

    text: str
    usage: Usage  # as the server reported it, else counted with cl100k
    model: str  # the model name the server answered with


class LLM:
    """A chat model: `stream()` yields text deltas then one Completion; `complete()` the latter."""

    def __init__(self, settings: Settings, *, server: LocalServer | None = None,
                 extra_body: dict | None = None) -> None:
        self.settings = settings
        # Server-specific request fields sent with every request (benchmarks turn llama.cpp's
        # prompt cache off with {"cache_prompt": False} to time a cold prompt).
        self.extra_body = dict(extra_body or {})
        self._server = server  # a caller's server is used but never stopped by this object
        self._owns_server = False
        self._client: OpenAI | None = None

    @property
    def model(self) -> str:
        return self.settings.model_name

    @property
    def constrained(self) -> bool:
        """True when requests may carry a GBNF `grammar` (llama.cpp's servers understand it)."""
        s = self.settings
        return s.llm_grammar if s.llm_grammar is not None else s.uses_local_model

    def stream(
        self, messages: list[dict[str, str]], *, max_tokens: int, model: str | None = None,
        grammar: str | None = None, stop: list[str] | None = None,
    ) -> Iterator[str | Completion]:
        """Yield the answer's text deltas as they arrive, then one final `Completion`.

        `grammar` (GBNF) constrains the output where the server supports it (`self.constrained`:
        llama.cpp's server); elsewhere it is left out and the caller parses the free text.
        """
        model = model or self.model
        params = self._params(messages, max_tokens, model)
        extra = dict(self.extra_body)
        if grammar and self.constrained:
            extra["grammar"] = grammar
        if extra:
            params["extra_body"] = extra
        if stop:
            params["stop"] = stop
        with self._mapped_errors(model, messages) as state:
            result = yield from self._stream_once(params, state)
            if result is None:
                # Nothing arrived. llama.cpp's server answers a streamed request whose prompt
                # overflows n_ctx with an empty 200 and then drops the connection (which the
                # next pooled request trips over): ask once more, on a fresh connection and
                # without streaming, to get its real error (a 400) or the answer.
                self._reset_client()
                result = yield from self._complete_once(params)
        text, usage, served_model = result
        yield Completion(text, usage or self._count_usage(messages, text), served_model)

    def _stream_once(self, params: dict, state: _StreamState):
        """Yield deltas; return (text, usage or None, model), or None when nothing arrived."""
        parts: list[str] = []
        usage: Usage | None = None
        finished = False
        served_model = params["model"]
        response = self._get_client().chat.completions.create(**params)
        try:
            for chunk in response:
                served_model = chunk.model or served_model
                if chunk.usage is not None:
                    usage = _usage(chunk.usage)
                for choice in chunk.choices:
                    finished = finished or bool(choice.finish_reason)
                    if choice.delta.content:
                        state.started = True
                        parts.append(choice.delta.content)
                        yield choice.delta.content
        except openai.APIConnectionError as err:
            if state.started or isinstance(err, openai.APITimeoutError):
                raise
            return None  # broke before the first word: worth one more try
        finally:
            response.close()  # also when the caller stops early: frees the connection
        if not parts and not finished:
            return None
        return "".join(parts), usage, served_model

    def _complete_once(self, params: dict):
        """The same request without streaming; yield its text; return (text, usage, model)."""
        params = {k: v for k, v in params.items() if k not in ("stream", "stream_options")}
        response = self._get_client().chat.completions.create(**params)
        text = (response.choices[0].message.content or "") if response.choices else ""
        if text:
            yield text
        usage = _usage(response.usage) if response.usage else None
        return text, usage, response.model or params["model"]

    def complete(
        self, messages: list[dict[str, str]], *, max_tokens: int, model: str | None = None,
        grammar: str | None = None, stop: list[str] | None = None,
    ) -> Completion:
        """The whole answer at once (the same request as `stream`, drained)."""
        for item in self.stream(messages, max_tokens=max_tokens, model=model, grammar=grammar,
                                stop=stop):
            if isinstance(item, Completion):
                return item
        raise AssertionError("stream() always ends with a Completion")

    def close(self) -> None:
        self._reset_client()
        if self._owns_server and self._server is not None:
            self._server.stop()
            self._server, self._owns_server = None, False

    def _reset_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> LLM:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- request -------------------------------------------------------------------------------
    def _params(self, messages: list[dict[str, str]], max_tokens: int, model: str) -> dict:
        params = {
            "model": model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": self.settings.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.settings.seed is not None:
            params["seed"] = self.settings.seed
        return params

    def _get_client(self) -> OpenAI:
        if self._owns_server and self._server is not None and not self._server.running:
            self._reset_client()  # our embedded server died (crash, OOM kill): start another
        if self._client is None:
            s = self.settings
            kwargs = {}
            base_url = self._base_url()
            if base_url is not None:
                kwargs["base_url"] = base_url
            self._client = OpenAI(
                api_key=s.llm_api_key or "not-needed",  # local servers accept any key
                timeout=s.llm_timeout,
                max_retries=s.llm_max_retries,
                **kwargs,
            )
        return self._client

    def _base_url(self) -> str | None:
        """The endpoint; starts the embedded server when that is what the settings ask for."""
        s = self.settings
        if s.llm_base_url:
            return s.llm_base_url
        if self._server is None and not s.uses_local_model:
            return None  # an API key and no URL: OpenAI's default
        if self._server is None:
            self._server, self._owns_server = LocalServer(s), True
        return self._server.start()

    def _count_usage(self, messages: list[dict[str, str]], text: str) -> Usage:
        """Estimate usage with cl100k when the server reports none (llama.cpp while streaming)."""
        ensure_tiktoken(self.settings.cache_dir)
        import tiktoken

        enc = tiktoken.get_encoding("cl100k_base")
        contents = (m.get("content") or "" for m in messages)
        prompt = sum(_TOKENS_PER_MESSAGE + len(enc.encode(c)) for c in contents)
        return Usage(prompt + _TOKENS_PER_REPLY, len(enc.encode(text)))

    # --- errors --------------------------------------------------------------------------------
    @contextmanager
    def _mapped_errors(self, model: str, messages: list[dict[str, str]]):
        state = _StreamState()
        try:
            yield state
        except openai.APIError as err:
            failure = _Failure(
                where=self._where(), model=model, started=state.started,
                unreachable_hint=self._unreachable_hint(), settings=self.settings,
                prompt_tokens=lambda: self._count_usage(messages, "").prompt_tokens,
            )  # fmt: skip
            raise LLMError(failure.describe(err)) from None

    def _where(self) -> str:
        if self._client is None:
            return self.settings.llm_base_url or "the model server"
        return str(self._client.base_url).rstrip("/")

    def _unreachable_hint(self) -> str:
        if self._server is not None and self.settings.llm_base_url is None:
            return f"the embedded model server stopped; see {self._server.log_path}"
        if self.settings.llm_base_url is None and self._server is None:
            return "check the network connection, or set PAPERS_LLM_BASE_URL"
        return "start it with `papers llm serve` or fix PAPERS_LLM_BASE_URL"


# --- embeddings ------------------------------------------------------------------------------
# Wait before retry n: 0.5 s doubled each time, at most 8 s (0.5, 1, 2, 4 s for 5 attempts).
EMBED_BACKOFF_S = 0.5
EMBED_BACKOFF_MAX_S = 8.0
_NOT_RETRIED = {501}  # "not implemented": a server without embeddings stays without them


def embed_client(settings: Settings) -> OpenAI:
    """The client of PAPERS_EMBED_BASE_URL; retries are `embed_texts`' own (max_retries=0)."""
    return OpenAI(base_url=settings.embed_base_url, api_key=settings.embed_api_key or "not-needed",
                  timeout=settings.embed_timeout, max_retries=0)


def embed_texts(client: OpenAI, model: str, texts: list[str], attempts: int = 5) -> list[list[float]]:
    """One /v1/embeddings request: a vector per text, in order. Retries 429/5xx/connection
    errors with exponential backoff; then, or on any other failure, one-line EmbeddingError."""
    where = str(client.base_url).rstrip("/")
    for attempt in range(1, attempts + 1):
        try:
            got = client.embeddings.create(model=model, input=texts)
            break
        except openai.APIError as err:
            status = getattr(err, "status_code", None)
            retried = isinstance(err, (openai.APIConnectionError, openai.RateLimitError)) or (
                isinstance(err, openai.InternalServerError) and status not in _NOT_RETRIED)
            if retried and attempt < attempts:
                time.sleep(min(EMBED_BACKOFF_S * 2 ** (attempt - 1), EMBED_BACKOFF_MAX_S))
                continue
            raise EmbeddingError(_embed_failure(err, where, attempt)) from None
    data = sorted(got.data, key=lambda d: d.index)
    if len(data) != len(texts):
        raise EmbeddingError(f"the embeddings endpoint at {where} returned {len(data)} vectors for "
                             f"{len(texts)} texts: check PAPERS_EMBED_BASE_URL / PAPERS_EMBED_MODEL")
    return [d.embedding for d in data]


def _embed_failure(err: openai.APIError, where: str, tries: int) -> str:
    """The one line for a failed embeddings request."""
    if isinstance(err, openai.APIConnectionError):
        reason = "timed out" if isinstance(err, openai.APITimeoutError) else _connection_reason(err)
    else:
        reason = f"HTTP {getattr(err, 'status_code', '?')}: {_server_message(err)}"
    if tries > 1:
        return (f"the embeddings endpoint at {where} failed {tries} times ({reason}): check that it "
                "runs (PAPERS_EMBED_BASE_URL), then run the command again (`papers ingest` resumes)")
    return (f"the embeddings endpoint at {where} refused the request ({reason}): check "
            "PAPERS_EMBED_MODEL, PAPERS_EMBED_API_KEY and PAPERS_EMBED_BASE_URL")


@dataclass
class _StreamState:
    started: bool = False  # True once text arrived: errors after it are mid-answer


@dataclass(frozen=True)
class _Failure:
    """What is needed to turn an openai error into one line saying what to do."""

    where: str  # the endpoint's URL
    model: str
    started: bool
    unreachable_hint: str
    settings: Settings
    prompt_tokens: Callable[[], int]  # our own count, when the server's message has none

    def describe(self, err: openai.APIError) -> str:
        where = self.where
        if isinstance(err, openai.APITimeoutError):
            return (f"the model server at {where} did not answer within "
                    f"{self.settings.llm_timeout:g} s: raise PAPERS_LLM_TIMEOUT or ask for a "
                    "shorter answer")  # fmt: skip
        if isinstance(err, openai.APIConnectionError):
            reason = _connection_reason(err)
            if self.started:
                return f"the connection to the model server at {where} broke mid-answer ({reason})"
            return f"cannot reach the model server at {where} ({reason}): {self.unreachable_hint}"
        if isinstance(err, openai.APIStatusError):
            return self._describe_status(err, _server_message(err))
        # An error event inside a stream (the HTTP status was 200).
        return f"the model server at {where} failed mid-answer: {_server_message(err)}"

    def _describe_status(self, err: openai.APIStatusError, message: str) -> str:
        where, status = self.where, err.status_code
        if status in (401, 403):
            return (f"the model server at {where} rejected the API key (HTTP {status}): "
                    "check PAPERS_LLM_API_KEY / OPENAI_API_KEY")  # fmt: skip
        if err.code == "model_not_found" or (status == 404 and "model" in message.lower()):
            return (f"the model '{self.model}' is not served at {where} (HTTP {status}): "
                    f"choose one it lists at {where}/models with PAPERS_LLM_MODEL")  # fmt: skip
        if status in (400, 413, 422) and (
            err.code == "context_length_exceeded" or _CONTEXT_WORDS.search(message)
        ):
            n = _prompt_tokens_in(message) or self.prompt_tokens()
            return (f"the prompt ({n} tokens) exceeds the model's context window; "
                    "a longer question or history? the embedded model's is PAPERS_LOCAL_CTX")  # fmt: skip
        if status == 404:
            return (f"the model server at {where} has no chat endpoint (HTTP 404: {message}): "
                    "PAPERS_LLM_BASE_URL usually ends in /v1")  # fmt: skip
        if status == 429:
            return (f"the model server at {where} is rate limiting (HTTP 429, "
                    f"{self.settings.llm_max_retries} retries done): wait, or raise "
                    "PAPERS_LLM_MAX_RETRIES")  # fmt: skip
        return f"the model server at {where} answered HTTP {status}: {message}"


def _usage(usage) -> Usage:
    """openai's usage object -> Usage, with the prompt tokens the server's cache reused."""
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) or 0
    return Usage(usage.prompt_tokens, usage.completion_tokens, cached)


def _server_message(err: openai.APIError) -> str:
    """The server's own error message, on one line and short enough for a terminal."""
    body = err.body
    msg = body.get("message") if isinstance(body, dict) else None
    if not isinstance(msg, str) or not msg:
        msg = err.message
    msg = " ".join(msg.split())
    return msg if len(msg) <= 300 else msg[:297] + "..."


def _prompt_tokens_in(message: str) -> int | None:
    for pattern in _PROMPT_TOKENS:
        if match := pattern.search(message):
            return int(match.group(1))
    return None


def _connection_reason(err: BaseException) -> str:
    """'connection refused', 'name or service not known', ... from the chained OS error."""
    seen = set()
    cur: BaseException | None = err
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        refused = isinstance(cur, ConnectionRefusedError) or "Connection refused" in str(cur)
        if refused or getattr(cur, "errno", None) == errno.ECONNREFUSED:
            return "connection refused"
        if isinstance(cur, OSError) and cur.strerror:
            return cur.strerror.lower()
        cur = cur.__cause__ or cur.__context__
    cause = err.__cause__
    text = " ".join(str(cause).split()) if cause else ""
    return text[:120] or type(cause or err).__name__
