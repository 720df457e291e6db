"""Which onnxruntime execution providers an engine's session gets (VOXHOST_TTS_DEVICE).

`cpu`: the CPU provider, as before. `cuda`: the CUDA provider, then the CPU
for any node it has no kernel for. `auto`: CUDA when this onnxruntime build has
it (the `gpu` extra, installed only by the CUDA image), else the CPU; so on a
CPU-only host, or with the default CPU wheel, nothing changes.

Everything here is import-safe without a GPU or onnxruntime-gpu: the provider
list is read at session creation, never at import. When CUDA was asked for and
cannot be had, one warning says why and the engine runs on the CPU.
"""

from __future__ import annotations

import logging
from typing import Literal

log = logging.getLogger("voxhost.engines")

Device = Literal["auto", "cpu", "cuda"]
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


def providers(device: Device, engine: str, available: list[str] | None = None) -> list[str]:
    """The provider list for `engine`'s session; `available` defaults to this onnxruntime's."""
    if device == "cpu":
        return [CPU]
    if available is None:
        import onnxruntime as ort

        available = ort.get_available_providers()
    if CUDA in available:
        _preload_cuda_libraries()
        return [CUDA, CPU]
    if device == "cuda":
        log.warning("%s: VOXHOST_TTS_DEVICE=cuda, but this onnxruntime has no CUDA provider (install the "
                    "'gpu' extra, as the CUDA image does: make install EXTRAS=...,gpu); running on the CPU.",
                    engine)
    return [CPU]


def session_options(threads: int, *, cpu_mem_arena: bool = False):
    """SessionOptions for a TTS engine's session: `threads` intra- and inter-op, quiet logs.

    The CPU memory arena is off by default. With it, onnxruntime keeps the largest
    intermediate buffers any synthesis ever needed (they grow with the input's length)
    for the session's life: Kokoro's RSS rose by about 220 MiB over two sentences
    and stayed there; without it those buffers go back to malloc, which the server
    trims when idle (ops/memory.py). Latency and memory side by side:
    bench/onnx_arena.py, docs/benchmarks.md."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    options.log_severity_level = 3
    options.enable_cpu_mem_arena = cpu_mem_arena
    return options


def on_cuda(session) -> bool:
    """Whether a created session really runs on CUDA: onnxruntime falls back to the
    CPU, with only its own error log, when the CUDA libraries fail to load."""
    return CUDA in session.get_providers()


def report(session, wanted: list[str], engine: str) -> str:
    """Log where `engine` runs; returns 'cuda' or 'cpu'."""
    if CUDA in wanted and not on_cuda(session):
        log.warning("%s: the CUDA provider did not load (CUDA or cuDNN libraries missing or mismatched; "
                    "see onnxruntime's error above); running on the CPU.", engine)
    device = "cuda" if on_cuda(session) else "cpu"
    log.info("%s runs on onnxruntime %s", engine, device.upper())
    return device


def _preload_cuda_libraries() -> None:
    """onnxruntime-gpu >= 1.21 can load cuDNN from the nvidia-* wheels the `gpu` extra
    installs (the CUDA image's base has cuBLAS but no cuDNN). Best effort: a system
    cuDNN works too, and `report` says so if neither does."""
    try:
        import onnxruntime as ort

        preload = getattr(ort, "preload_dlls", None)
        if preload is not None:
            preload(cuda=False, cudnn=True)
    except Exception as exc:  # a missing wheel is not an error here; report() decides
        log.debug("onnxruntime.preload_dlls: %s", exc)
