"""assets: staging pinned package files offline, detecting corruption, naming what to reinstall."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from assistant import assets
from assistant.assets import (
    MINILM_MODEL,
    MINILM_TOKENIZER_FILES,
    MINILM_TOKENIZER_PACKAGE,
    TIKTOKEN_ENCODINGS,
    PackageFile,
    ensure_minilm,
    ensure_tiktoken,
    is_verified,
    sha256_file,
    stage_file,
)
from assistant.errors import AssetError, PapersError


def vocab_file() -> PackageFile:
    """A small real asset: the MiniLM tokenizer's vocab.txt (232 KB)."""
    req, module = MINILM_TOKENIZER_PACKAGE
    return PackageFile(req, module, "model_files/vocab.txt", MINILM_TOKENIZER_FILES["vocab.txt"])


def _later(path: Path) -> None:
    """Let the clock tick past the stamp's mtime (filesystem timestamps are coarse)."""
    before = path.stat().st_mtime_ns
    while time.time_ns() <= before + 20_000_000:
        time.sleep(0.01)


def _one_line(message: str) -> None:
    assert message and "\n" not in message and "Traceback" not in message


# --------------------------------------------------------------------------- staging


def test_ensure_minilm_stages_every_file_verified(tmp_path):
    folder = ensure_minilm(tmp_path / "cache")
    assert folder == tmp_path / "cache" / "onnx_models" / "all-MiniLM-L6-v2"
    expected = {"model.onnx": MINILM_MODEL[3], **MINILM_TOKENIZER_FILES}
    for name, sha in expected.items():
        path = folder / "onnx" / name
        assert sha256_file(path) == sha, name
        assert is_verified(path, sha)
    # Nothing but the staged files and their stamps (no partial .tmp files left behind).
    names = sorted(p.name for p in (folder / "onnx").iterdir())
    assert names == sorted([*expected, *(n + ".ok" for n in expected)])


def test_second_staging_does_not_copy_again(tmp_path):
    dest = tmp_path / "vocab.txt"
    stage_file(vocab_file(), dest)
    stat = dest.stat()
    _later(dest)
    assert stage_file(vocab_file(), dest) == dest
    again = dest.stat()
    assert (again.st_ino, again.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)


@pytest.mark.parametrize("damage", ["flip-bytes", "truncate", "delete"])
def test_corrupt_staged_file_is_detected_and_restaged(tmp_path, damage):
    src = vocab_file()
    dest = stage_file(src, tmp_path / "cache" / "vocab.txt")
    _later(dest)
    if damage == "flip-bytes":  # same size, different content
        data = bytearray(dest.read_bytes())
        data[100:110] = b"XXXXXXXXXX"
        dest.write_bytes(bytes(data))
    elif damage == "truncate":
        dest.write_bytes(dest.read_bytes()[:1000])
    else:
        dest.unlink()  # the stamp stays behind
    assert not is_verified(dest, src.sha256)

    stage_file(src, dest)
    assert sha256_file(dest) == src.sha256
    assert is_verified(dest, src.sha256)


def test_tampered_stamp_forces_restaging(tmp_path):
    src = vocab_file()
    dest = stage_file(src, tmp_path / "vocab.txt")
    stamp = dest.with_name(dest.name + ".ok")
    stamp.write_text("0" * 64 + " 1 1")
    assert not is_verified(dest, src.sha256)
    stage_file(src, dest)
    assert is_verified(dest, src.sha256)


def test_corrupt_staged_model_is_restaged_by_ensure_minilm(tmp_path):
    cache = tmp_path / "cache"
    model = ensure_minilm(cache) / "onnx" / "model.onnx"
    _later(model)
    with open(model, "r+b") as fh:  # damage a few bytes in place
        fh.seek(4096)
        fh.write(b"\0" * 16)
    assert not is_verified(model, MINILM_MODEL[3])
    ensure_minilm(cache)
    assert sha256_file(model) == MINILM_MODEL[3]


_STAGE_AT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from assistant.assets import ensure_minilm
    start = float(sys.argv[2])
    while time.time() < start:  # all processes begin together
        time.sleep(0.005)
    ensure_minilm(Path(sys.argv[1]))
    """
)


def test_concurrent_first_runs_stage_safely(tmp_path):
    """Several `papers` commands started at once on a fresh cache (each copies 23 MB)."""
    cache = tmp_path / "cache"
    start = time.time() + 3
    procs = [subprocess.Popen([sys.executable, "-c", _STAGE_AT, str(cache), str(start)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert [code for code, _ in results] == [0] * 4, "\n".join(e for _, e in results)
    onnx = cache / "onnx_models" / "all-MiniLM-L6-v2" / "onnx"
    assert sha256_file(onnx / "model.onnx") == MINILM_MODEL[3]
    assert not list(onnx.glob("*.tmp"))


# --------------------------------------------------------------------------- broken packages


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """An importable package `fakeasset_<random>` on sys.path holding data/good.bin."""
    name = f"fakeasset_{uuid.uuid4().hex[:8]}"
    root = tmp_path / "site" / name
    (root / "data").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "data" / "good.bin").write_bytes(b"the real bytes\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return name, root


GOOD_SHA = hashlib.sha256(b"the real bytes\n").hexdigest()


def test_fake_package_with_the_right_file_stages(tmp_path, fake_package):
    name, _ = fake_package
    src = PackageFile("fake-asset==1.2.3", name, "data/good.bin", GOOD_SHA)
    dest = stage_file(src, tmp_path / "out" / "good.bin")
    assert dest.read_bytes() == b"the real bytes\n"


def test_corrupt_package_file_names_the_package_to_reinstall(tmp_path, fake_package):
    name, root = fake_package
    (root / "data" / "good.bin").write_bytes(b"the wrong bytes\n")
    src = PackageFile("fake-asset==1.2.3", name, "data/good.bin", GOOD_SHA)
    dest = tmp_path / "out" / "good.bin"
    with pytest.raises(AssetError) as info:
        stage_file(src, dest)
    message = str(info.value)
    _one_line(message)
    assert "corrupt" in message
    assert "pip install --force-reinstall 'fake-asset==1.2.3'" in message
    assert isinstance(info.value, PapersError) and info.value.exit_code == 1
    assert not dest.exists() and not dest.with_name("good.bin.ok").exists()
    assert not dest.with_name("good.bin.tmp").exists()


def test_missing_package_file_names_the_package_to_reinstall(tmp_path, fake_package):
    name, _ = fake_package
    src = PackageFile("fake-asset==1.2.3", name, "data/missing.bin", GOOD_SHA)
    with pytest.raises(AssetError) as info:
        stage_file(src, tmp_path / "out" / "missing.bin")
    message = str(info.value)
    _one_line(message)
    assert "missing.bin is missing" in message
    assert "pip install --force-reinstall 'fake-asset==1.2.3'" in message


def test_uninstalled_package_says_what_to_install(tmp_path):
    src = PackageFile("not-there==0.0.1", f"not_there_{uuid.uuid4().hex[:8]}", "x.bin", GOOD_SHA)
    with pytest.raises(AssetError) as info:
        stage_file(src, tmp_path / "x.bin")
    message = str(info.value)
    _one_line(message)
    assert "not-there==0.0.1" in message and "pip install" in message


def test_a_package_turning_corrupt_after_staging_does_not_matter(tmp_path, fake_package):
    """The staged copy is what is used: once verified, the package is not read again."""
    name, root = fake_package
    src = PackageFile("fake-asset==1.2.3", name, "data/good.bin", GOOD_SHA)
    dest = stage_file(src, tmp_path / "out" / "good.bin")
    (root / "data" / "good.bin").write_bytes(b"broken")
    assert stage_file(src, dest).read_bytes() == b"the real bytes\n"


# --------------------------------------------------------------------------- tiktoken offline

# Run in a fresh interpreter: tiktoken caches loaded encodings per process, so only a new
# process proves the staged files (and not something loaded earlier) are what it reads.
_TIKTOKEN_SCRIPT = textwrap.dedent(
    """
    import socket, sys
    from pathlib import Path

    def blocked(*args, **kwargs):
        raise RuntimeError("network blocked")

    socket.socket.connect = blocked
    socket.socket.connect_ex = blocked
    socket.create_connection = blocked
    socket.getaddrinfo = blocked

    from assistant.assets import ensure_tiktoken
    folder = ensure_tiktoken(Path(sys.argv[1]))
    import tiktoken
    enc = tiktoken.get_encoding("cl100k_base")
    print(folder)
    print(enc.encode("hello world"), enc.decode(enc.encode("Stability gap")))
    print(len(tiktoken.get_encoding("o200k_base").encode("hello world")))
    """
)


def test_tiktoken_works_offline_after_ensure_tiktoken(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIKTOKEN_", "DATA_GYM_"))}
    done = subprocess.run([sys.executable, "-c", _TIKTOKEN_SCRIPT, str(tmp_path / "cache")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    folder, tokens, count = done.stdout.splitlines()
    assert Path(folder) == tmp_path / "cache" / "tiktoken"
    assert tokens == "[15339, 1917] Stability gap"
    assert count == "2"
    for url, sha in TIKTOKEN_ENCODINGS.values():
        staged = Path(folder) / hashlib.sha1(url.encode()).hexdigest()
        assert sha256_file(staged) == sha


def test_ensure_tiktoken_in_process_sets_the_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "elsewhere"))  # restored afterwards
    folder = ensure_tiktoken(tmp_path / "cache")
    assert os.environ["TIKTOKEN_CACHE_DIR"] == str(folder)
    from assistant.chunking import token_counter

    assert token_counter()("hello world") == 2


def test_reinstall_hint_is_a_copyable_command():
    assert assets._reinstall_hint("x==1") == "reinstall it: `pip install --force-reinstall 'x==1'`"
