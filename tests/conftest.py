"""Shared test fixtures. Every test runs with the network closed except loopback."""

from __future__ import annotations

import os

import pytest

import netguard

# LLM recording/replay fixtures (vcrpy cassettes) live in tests/recording.py.
pytest_plugins = ["recording"]

# The whole suite (no paths given) runs on this many pytest-xdist workers; CI's machine has 2
# cores. Measured there, the suite took 283 s in one process and 193 s on 2 workers (same load).
WORKERS = 2


def _hypothesis_profile() -> None:
    """The fuzz suite's (tests/test_fuzz.py) defaults. Hypothesis keeps an example database and
    a cache of the code's constants in `./.hypothesis`: tests write only in temporary folders,
    so there is no database, and its home is a folder in the system's temp directory."""
    try:
        from hypothesis import settings
        from hypothesis.configuration import set_hypothesis_home_dir
    except ImportError:  # a venv without the dev extra: the fuzz module fails on its own import
        return
    import tempfile
    from pathlib import Path

    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / f"papers-hypothesis-{os.getuid()}")
    settings.register_profile("papers", database=None, deadline=None, print_blob=True)
    settings.load_profile("papers")


_hypothesis_profile()


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """`pytest` alone runs on WORKERS processes; chosen paths, -n 0, --pdb or recording (one
    model server per session) run in one, as does a venv without pytest-xdist."""
    if not config.pluginmanager.hasplugin("xdist") or hasattr(config, "workerinput"):
        return  # no xdist, or a worker (xdist calls this hook there too)
    from recording import RECORD  # imported here: pytest_plugins loads it first, rewritten
    whole_suite = config.args_source == pytest.Config.ArgsSource.TESTPATHS
    if (whole_suite and not RECORD and config.option.numprocesses is None
            and not config.option.usepdb and (os.cpu_count() or 1) >= WORKERS):
        config.option.numprocesses = WORKERS


def pytest_collection_modifyitems(items):
    """Every real-model test (marked slow) takes the `real_model` fixture: fail one that does not."""
    for item in items:
        if item.get_closest_marker("slow") and "real_model" not in item.fixturenames:
            item.stash[_NO_LOCK] = True


_NO_LOCK = pytest.StashKey[bool]()


def pytest_runtest_setup(item):
    if item.stash.get(_NO_LOCK, False):
        pytest.fail("a test marked slow runs the real model: it must take the `real_model` "
                    "fixture (tests/conftest.py)", pytrace=False)


@pytest.fixture
def real_model(tmp_path_factory):
    """Held by each test that starts the real embedded model: one such test at a time, across
    xdist workers too (two servers would share the 2 cores). The lock file lies in the run's
    temp root, which the workers share (alone: pytest's root for the user, shared by runs)."""
    import fcntl

    path = tmp_path_factory.getbasetemp().parent / "real-model.lock"
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


@pytest.fixture(autouse=True, scope="session")
def _no_network():
    """Fail any attempt to connect anywhere but loopback (pydantic-ai style guard)."""
    netguard.install()
    yield
    netguard.uninstall()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path_factory):
    """No test sees the user's keys, endpoints, store or libraries; caches go to a shared temp
    folder."""
    import os

    for name in list(os.environ):
        if name.startswith("PAPERS_") or name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
            monkeypatch.delenv(name, raising=False)
    cache = tmp_path_factory.getbasetemp() / "papers-cache"
    monkeypatch.setenv("PAPERS_CACHE_DIR", str(cache))
    monkeypatch.setenv("PAPERS_STORE_DIR", str(tmp_path_factory.getbasetemp() / "unused-store"))
    # The per-user data folder (libraries) too, also for children that drop PAPERS_* variables:
    # platformdirs reads XDG_DATA_HOME on Linux.
    data = tmp_path_factory.getbasetemp() / "unused-data"
    monkeypatch.setenv("PAPERS_DATA_DIR", str(data / "paper-assistant"))
    monkeypatch.setenv("XDG_DATA_HOME", str(data))


@pytest.fixture(scope="session")
def bundled_store(tmp_path_factory):
    """Settings of a store holding the bundled collection, ingested once per test session (~3 s:
    its vectors ship with the package).

    Tests must not write to it; copy it (shutil.copytree) to change it.
    """
    from assistant.config import Settings
    from assistant.ingest import ingest

    root = tmp_path_factory.mktemp("bundled")
    settings = Settings(store_dir=root / "store", cache_dir=tmp_path_factory.getbasetemp() / "papers-cache")
    ingest(settings)
    return settings
