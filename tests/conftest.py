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
REAL_MODEL = "real-model"  # the xdist group of the tests marked slow


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
    if config.option.numprocesses and config.option.dist == "no":
        config.option.dist = "loadgroup"  # honour xdist_group (below) whenever -n is on


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist, before a worker starts: a worker reads --dist from its command line only, so tell
    it when the hook above chose loadgroup."""
    node.workerinput["loadgroup"] = node.config.option.dist == "loadgroup"


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config, items):
    """The real-model tests (marked slow) share one worker: never two model servers at once."""
    if getattr(config, "workerinput", {}).get("loadgroup"):
        config.option.loadgroup = True  # what xdist's hook reads (see pytest_configure_node)
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.xdist_group(REAL_MODEL))
    yield  # xdist's own hook runs here; it renames a grouped test to NODEID@GROUP
    # pytest 9.2 made that renaming a silent no-op (pytest-dev/pytest-xdist#1386; hence
    # pytest<9.2 in the dev extra): fail those tests rather than start two models at once.
    if getattr(config.option, "loadgroup", False):
        for item in items:
            if item.get_closest_marker("slow") and not item.nodeid.endswith(f"@{REAL_MODEL}"):
                item.stash[_UNGROUPED] = True


_UNGROUPED = pytest.StashKey[bool]()


def pytest_runtest_setup(item):
    if item.stash.get(_UNGROUPED, False):
        pytest.fail("pytest-xdist did not keep the real-model tests on one worker: run them with "
                    "-n 0, or install the dev extra's versions", pytrace=False)


@pytest.fixture(autouse=True, scope="session")
def _no_network():
    """Fail any attempt to connect anywhere but loopback (pydantic-ai style guard)."""
    netguard.install()
    yield
    netguard.uninstall()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path_factory):
    """No test sees the user's keys, endpoints or store; caches go to a shared temp folder."""
    import os

    for name in list(os.environ):
        if name.startswith("PAPERS_") or name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
            monkeypatch.delenv(name, raising=False)
    cache = tmp_path_factory.getbasetemp() / "papers-cache"
    monkeypatch.setenv("PAPERS_CACHE_DIR", str(cache))
    monkeypatch.setenv("PAPERS_STORE_DIR", str(tmp_path_factory.getbasetemp() / "unused-store"))


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
