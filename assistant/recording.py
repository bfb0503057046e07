"""Record and replay language-model HTTP calls with vcrpy (used by the tests and `papers eval`).

Recording runs the real model once and stores each request/response pair in a YAML cassette;
replaying answers the same requests from the cassette with no server at all, so CI needs neither
the 1.1 GB model nor minutes of CPU. vcrpy 9.4 patches httpx2's transports, which is what openai
3.x sends through, and a streamed response is stored as one body of `data:` lines that replays.

Requests are matched on method, path and the parsed JSON body, never on host or port: the
embedded server listens on a port picked at each start, and replay points at a dead port.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import vcr
from vcr.cassette import Cassette
from vcr.errors import CannotOverwriteExistingCassetteException

# Request headers that may carry secrets; vcrpy drops them before a cassette is written.
FILTER_HEADERS = ["authorization", "api-key", "x-api-key", "openai-organization"]
# Response headers that name the account (OpenAI) or set cookies: dropped too.
_SECRET_RESPONSE_HEADERS = {"openai-organization", "openai-project", "set-cookie"}
# openai's `x-stainless-*` headers hold the OS, Python and package versions: noise in a diff.
_NOISY_REQUEST_HEADER_PREFIX = "x-stainless"


class RecordingError(AssertionError):
    """A cassette does not fit the code any more; the message says how to re-record."""


def _parsed(body: bytes | str | None) -> object:
    """The JSON value of a body, or the body itself (as text) when it is not JSON."""
    if body is None or body == b"" or body == "":
        return None
    text = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else body
    try:
        return json.loads(text)
    except ValueError:
        return text


def json_body(r1, r2) -> None:
    """vcrpy matcher: equal when the bodies hold the same JSON, whatever the key order.

    vcrpy's own `body` matcher parses JSON only when both requests carry
    `Content-Type: application/json`; this one does not depend on headers at all.
    """
    b1, b2 = _parsed(r1.body), _parsed(r2.body)
    if b1 != b2:
        raise AssertionError(_short_diff(b1, b2))


def _short_diff(new: object, recorded: object) -> str:
    if isinstance(new, dict) and isinstance(recorded, dict):
        keys = sorted(k for k in new.keys() | recorded.keys() if new.get(k) != recorded.get(k))
        return f"JSON bodies differ in {', '.join(map(str, keys))}"
    return "bodies differ"


def _clean_request(request):
    for name in [h for h in request.headers if h.lower().startswith(_NOISY_REQUEST_HEADER_PREFIX)]:
        del request.headers[name]
    return request


def _clean_response(response: dict) -> dict:
    headers = response.get("headers", {})
    for name in [h for h in headers if h.lower() in _SECRET_RESPONSE_HEADERS]:
        del headers[name]
    return response


class _VCR(vcr.VCR):
    def use_cassette(self, path=None, **kwargs):
        # Each recorded answer plays once: code that asks twice must have been recorded asking
        # twice. (vcrpy takes this per cassette, not in VCR(); False is also its default.)
        kwargs.setdefault("allow_playback_repeats", False)
        return super().use_cassette(path, **kwargs)


def make_vcr(cassette_dir: Path | str, record: bool) -> vcr.VCR:
    """A VCR that records every request ("all") or replays only ("none": unknown ones fail)."""
    recorder = _VCR(
        cassette_library_dir=str(cassette_dir),
        record_mode="all" if record else "none",
        match_on=["method", "path", "body"],
        filter_headers=FILTER_HEADERS,
        before_record_request=_clean_request,
        before_record_response=_clean_response,
        decode_compressed_response=True,
    )
    # Replace vcrpy's header-dependent body matcher with the JSON-aware one, under the same name.
    recorder.register_matcher("body", json_body)
    return recorder


def check_all_played(cassette: Cassette, rerecord: str) -> None:
    """Raise RecordingError when some recorded interaction was never asked for."""
    if cassette.all_played:
        return
    unplayed = [req for i, req in enumerate(cassette.requests) if not cassette.play_counts[i]]
    first = unplayed[0]
    raise RecordingError(
        f"{len(unplayed)} of {len(cassette)} recorded LLM calls in {cassette.path} were not "
        f"replayed (first: {first.method} {first.path}); the code now makes fewer or different "
        f"calls than when it was recorded: re-record with `{rerecord}`"
    )


def add_rerecord_note(exc: BaseException, rerecord: str) -> None:
    """Add the re-record command to an unmatched-request error (once), wherever it is chained."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, CannotOverwriteExistingCassetteException):
            note = f"This LLM call is not in the cassette: re-record with `{rerecord}`"
            if note not in getattr(exc, "__notes__", []):
                exc.add_note(note)
            return
        cur = cur.__cause__ or cur.__context__


@contextmanager
def use_recording(path: Path | str, *, record: bool, rerecord: str) -> Iterator[Cassette]:
    """Record to, or replay from, the cassette at `path` for the block's LLM calls.

    Replaying, an unknown request fails at once (with `rerecord` in a note) and, when the block
    ends without error, every recorded call must have been replayed (check_all_played).
    """
    path = Path(path)
    if record:
        # Start clean: a re-recorded test that makes fewer calls must not keep stale ones.
        path.unlink(missing_ok=True)
    recorder = make_vcr(path.parent, record)
    try:
        with recorder.use_cassette(path.name) as cassette:
            yield cassette
    except BaseException as exc:
        add_rerecord_note(exc, rerecord)
        raise
    if not record:
        check_all_played(cassette, rerecord)
