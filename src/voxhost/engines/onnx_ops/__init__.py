"""voxhost's own onnxruntime kernels (voxhost_ops.c, domain "ai.voxhost"), built on the host.

onnxruntime's Sin kernel is scalar and single-threaded, and Kokoro's decoder spends an eighth of
every call in it (bench/kokoro_kernels.py). `library()` compiles voxhost_ops.c with the system C
compiler into the models directory once (atomically, under a lock, named by the source's hash so
an edited source is rebuilt), and `register()` adds it to a session's options. Without a
compiler, or if the build or the load fails, the engines keep onnxruntime's own kernels and
say so once: slower, never broken.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from voxhost.ops.locks import file_lock

log = logging.getLogger("voxhost.engines")

SOURCE = Path(__file__).with_name("voxhost_ops.c")
DOMAIN = "ai.voxhost"
# -fno-math-errno lets sinf's fallback vectorise around; -ffp-contract=off keeps a * b + c two
# roundings, as onnxruntime's separate nodes do (so Snake is bitwise those nodes); no -ffast-math,
# whose crtfastmath.o would set flush-to-zero for the whole process.
CFLAGS = ("-O3", "-fno-math-errno", "-ffp-contract=off", "-fPIC", "-shared", "-Wall", "-Wextra")


class OpsUnavailable(RuntimeError):
    """The custom-op library could not be built or loaded: use onnxruntime's own kernels."""


def library(models_dir: Path) -> Path:
    """The built library for this source, compiled now if it is not there yet."""
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(CFLAGS).encode()).hexdigest()[:16]
    dest = Path(models_dir) / "onnx_ops" / f"libvoxhost_ops-{digest}.so"
    if dest.is_file():
        return dest
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        raise OpsUnavailable("no C compiler (cc) to build voxhost's onnxruntime kernels")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(dest.with_name(dest.name + ".lock")):
        if dest.is_file():  # another process built it first
            return dest
        with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
            built = Path(tmp) / dest.name
            try:
                subprocess.run([compiler, *CFLAGS, "-o", str(built), str(SOURCE), "-lm"],
                               check=True, capture_output=True, text=True, timeout=120)
            except (OSError, subprocess.SubprocessError) as exc:
                detail = getattr(exc, "stderr", "") or str(exc)
                raise OpsUnavailable(f"building {SOURCE.name} failed: {detail.strip()[:500]}") from exc
            os.replace(built, dest)
    return dest


def register(options, models_dir: Path) -> Path:
    """Add the library to onnxruntime SessionOptions; returns its path."""
    path = library(models_dir)
    try:
        options.register_custom_ops_library(str(path))
    except Exception as exc:  # onnxruntime raises its own types (Fail, RuntimeException)
        raise OpsUnavailable(f"onnxruntime could not load {path.name}: {exc}") from exc
    return path
