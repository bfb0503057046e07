"""A server's client cache: one folder a collection, marked when used, stale ones removed."""

from __future__ import annotations

import hashlib
import os
import time

from assistant.client_cache import STALE_DAYS, USED, collection_dir, last_used, prune

DAY = 86400


def _folder(servers, name, used_days_ago, now):
    folder = servers / name
    (folder / "bm25").mkdir(parents=True)
    (folder / "bm25" / "meta.json").write_text("{}")
    stamp = now - used_days_ago * DAY
    (folder / USED).touch()
    os.utime(folder / USED, (stamp, stamp))
    return folder


def test_folders_unused_for_thirty_days_are_removed_and_the_rest_kept(tmp_path):
    now = time.time()
    servers = tmp_path / "servers"
    stale = _folder(servers, "collection-old", STALE_DAYS + 1, now)
    recent = _folder(servers, "collection-recent", STALE_DAYS - 1, now)
    current = _folder(servers, "collection-mine", STALE_DAYS + 5, now)  # in use: never removed
    (servers / "stray-file").write_text("x")

    assert prune(servers, keep=current, now=now) == [stale]
    assert not stale.exists() and recent.exists() and current.exists()
    assert (servers / "stray-file").exists()


def test_resolving_a_collection_marks_it_used_and_prunes_its_siblings(tmp_path):
    now = time.time()
    servers = tmp_path / "servers"
    stale = _folder(servers, "collection-gone", 400, now)
    folder = collection_dir(tmp_path, "http://127.0.0.1:8000", "papers", "abc", now=now)
    assert folder == servers / "collection-abc" and folder.is_dir()
    assert abs(last_used(folder) - now) < 1
    assert not stale.exists()


def test_a_folder_under_the_older_key_is_moved_not_pruned(tmp_path):
    now = time.time()
    servers = tmp_path / "servers"
    older = hashlib.sha1(b"http://h:8000|papers").hexdigest()[:12]
    _folder(servers, older, 1, now)
    folder = collection_dir(tmp_path, "http://h:8000", "papers", "xyz", now=now)
    assert (folder / "bm25" / "meta.json").exists() and not (servers / older).exists()


def test_a_folder_written_by_older_code_ages_by_its_own_time(tmp_path):
    folder = tmp_path / "servers" / "collection-legacy"
    folder.mkdir(parents=True)
    stamp = time.time() - 50 * DAY
    os.utime(folder, (stamp, stamp))
    assert abs(last_used(folder) - stamp) < 1
