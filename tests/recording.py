"""Pytest plugin: replay recorded model answers (vcrpy cassettes) instead of running the model.

Tests that talk to the language model take the `llm_settings` fixture: a `Settings` whose LLM
points at the recorded server, with the cassette `tests/cassettes/<test module>/<test name>.yaml`
active for the whole test.

Replaying (the default, and CI): no server runs. The base URL is `http://127.0.0.1:9/v1`, where
nothing listens, and `llm_max_retries` is 0, so a request that is not in the cassette fails at
once with a note giving the command that re-records it. After a passing test, every recorded
call must have been replayed, or the test fails: the code makes fewer or other calls than when
it was recorded.

Recording (`PAPERS_RECORD=1`), one test, a file or all of them:

    PAPERS_RECORD=1 .venv/bin/python -m pytest tests/test_llm.py::test_complete

- `PAPERS_RECORD_BASE_URL=http://127.0.0.1:8080/v1` records against a running server, e.g. one
  started once with `papers llm serve` (fastest when recording often);
- otherwise ONE embedded server is started for the whole session, from the GGUF in
  `PAPERS_RECORD_CACHE_DIR` or the user cache dir (assembled there once, 1.1 GB, ~10 s).

Cassettes are rewritten from scratch, `authorization`/API-key headers are never stored, and
requests match on method, path and JSON body (any key order), never on host or port. Review
the YAML diff before committing: a changed answer is a changed test input.

Other tests (chat, eval) use the same mechanism with their own cassette paths:

    def test_chat(llm_replay):
        with llm_replay("test_chat/two_turns.yaml") as settings:
            ...

or `replaying(path)` for a cassette alone (settings built elsewhere, e.g. from the
`recording_base_url` fixture and `recorded_settings`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import platformdirs
import pytest

from assistant.config import LOCAL_MODEL, Settings
from assistant.recording import add_rerecord_note, check_all_played, make_vcr, use_recording

CASSETTES = Path(__file__).parent / "cassettes"
# Nothing listens on the discard port: a request that escapes the cassette fails at once.
REPLAY_BASE_URL = "http://127.0.0.1:9/v1"
RECORD_CTX = 4096  # the embedded model's n_ctx (Settings.local_ctx), in record and replay alike

# Read at import: the autouse `_isolated_env` fixture removes PAPERS_* before each test.
RECORD = os.environ.get("PAPERS_RECORD", "") not in ("", "0")
RECORD_BASE_URL = os.environ.get("PAPERS_RECORD_BASE_URL") or None
# The record cache holds the assembled 1.1 GB GGUF across runs; None: the user cache dir.
RECORD_CACHE_DIR_ENV = os.environ.get("PAPERS_RECORD_CACHE_DIR") or None
RECORD_CACHE_DIR = Path(RECORD_CACHE_DIR_ENV or platformdirs.user_cache_dir("paper-assistant"))
_report_key = pytest.StashKey[dict]()


def rerecord_command(nodeid: str) -> str:
    return f"PAPERS_RECORD=1 .venv/bin/python -m pytest {nodeid}"


def cassette_path(node) -> Path:
    """tests/cassettes/<module>/<test name>.yaml (parametrize ids made file-name safe)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", node.name).strip("_")
    return CASSETTES / Path(node.path).stem / f"{name}.yaml"


def recorded_settings(base_url: str, **overrides) -> Settings:
    """Settings for the recorded server: the same request bodies in record and replay."""
    values = dict(
        llm_base_url=base_url,
        llm_api_key=None,
        llm_model=LOCAL_MODEL,
        llm_max_retries=0,  # replaying, an unrecorded call must fail now, not after backoff
        llm_grammar=True,  # the embedded model's default: answer lines are grammar-constrained
    )
    values.update(overrides)
    return Settings(**values)


@contextmanager
def replaying(path: Path | str, *, nodeid: str = "tests") -> Iterator[object]:
    """Use the cassette at `path` (relative paths are under tests/cassettes) for the block.

    Replaying, every recorded call must have been made when the block ends without error;
    `nodeid` (request.node.nodeid) makes the re-record command name the test.
    """
    path = Path(path)
    if not path.is_absolute():
        path = CASSETTES / path
    with use_recording(path, record=RECORD, rerecord=rerecord_command(nodeid)) as cassette:
        yield cassette


# --- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def recording_base_url() -> Iterator[str]:
    """Where LLM calls go: the dead replay port, or the server being recorded."""
    if not RECORD:
        yield REPLAY_BASE_URL
    elif RECORD_BASE_URL:
        yield RECORD_BASE_URL
    else:
        from assistant.local_server import LocalServer

        with LocalServer(Settings(cache_dir=RECORD_CACHE_DIR, local_ctx=RECORD_CTX)) as server:
            yield server.base_url


@pytest.fixture
def llm_settings(request, recording_base_url) -> Iterator[Settings]:
    """Settings whose LLM replays (or records) this test's cassette."""
    with _cassette_for(request, cassette_path(request.node)):
        yield recorded_settings(recording_base_url)


@pytest.fixture
def llm_replay(request, recording_base_url):
    """`with llm_replay("module/name.yaml", **settings_overrides) as settings:` for other paths."""

    @contextmanager
    def use(path: Path | str, **overrides) -> Iterator[Settings]:
        with replaying(path, nodeid=request.node.nodeid):
            yield recorded_settings(recording_base_url, **overrides)

    return use


@contextmanager
def _cassette_for(request, path: Path) -> Iterator[None]:
    """`replaying` for a fixture: skips the all-replayed check when the test itself failed.

    A fixture's teardown does not see the test's exception, so the outcome comes from the
    report stored by pytest_runtest_makereport below; the check would only add noise then.
    """
    rerecord = rerecord_command(request.node.nodeid)
    if RECORD:
        with use_recording(path, record=True, rerecord=rerecord):
            yield
        return
    with make_vcr(path.parent, record=False).use_cassette(path.name) as cassette:
        yield
    call = request.node.stash.get(_report_key, {}).get("call")
    if call is not None and call.passed:
        check_all_played(cassette, rerecord)


# --- hooks ---------------------------------------------------------------------------------------
@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item) -> Iterator[None]:
    """Name the re-record command on a request that is not in the cassette."""
    try:
        return (yield)
    except BaseException as exc:
        add_rerecord_note(exc, rerecord_command(item.nodeid))
        raise


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    item.stash.setdefault(_report_key, {})[report.when] = report
    return report
