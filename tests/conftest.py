"""Shared test fixtures. Every test runs with the network closed except loopback."""

from __future__ import annotations

import pytest

import netguard

# LLM recording/replay fixtures (vcrpy cassettes) live in tests/recording.py.
pytest_plugins = ["recording"]


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
