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

from voxhost.engines.threads import OnnxThreads

log = logging.getLogger("voxhost.engines")

Device = Literal["auto", "cpu", "cuda"]
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


def providers(device: Device | str, engine: str, available: list[str] | None = None) -> list[str]:
    """The provider list for `engine`'s session (`device`: auto, cpu or cuda); `available`
    defaults to this onnxruntime's."""
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


def session_options(pools: OnnxThreads, *, cpu_mem_arena: bool = True):
    """SessionOptions for a TTS engine's session: its thread pools as the thread policy sizes
    them (engines/threads.py `tts_threads`), quiet logs, and onnxruntime's CPU memory arena.

    The arena makes a synthesis's many intermediate buffers cheap: without it each is a malloc,
    and one over ops/memory.py's mmap threshold a fresh mmap with a page fault per page
    touched. Left alone, though, it keeps the largest buffers any synthesis ever needed for
    the session's life (Kokoro's RSS rose and stayed up). So every run shrinks it
    back (`ShrinkingSession`): buffers are reused within a run and handed back after it.
    Latency and memory of the three, side by side: bench/onnx_arena.py, docs/benchmarks.md."""
    import onnxruntime as ort

    options = pools.apply(ort.SessionOptions())
    options.log_severity_level = 3
    options.enable_cpu_mem_arena = cpu_mem_arena
    return options


# Run option: after the run, the CPU arena frees the regions nothing uses any more.
ARENA_SHRINKAGE = ("memory.enable_memory_arena_shrinkage", "cpu:0")


class ShrinkingSession:
    """An InferenceSession whose every run hands the CPU arena's free regions back afterwards.
    Everything else is the session's own; libraries that call `run` themselves (piper) get
    the shrinking through it unchanged."""

    def __init__(self, session, shrink: bool = True):
        import onnxruntime as ort

        self.session = session
        self.shrink = shrink
        self._template = ort.RunOptions()
        if shrink:
            self._template.add_run_config_entry(*ARENA_SHRINKAGE)

    def run(self, output_names, input_feed, run_options=None):
        if run_options is None:
            run_options = self._template
        elif self.shrink:
            run_options.add_run_config_entry(*ARENA_SHRINKAGE)
        return self.session.run(output_names, input_feed, run_options)

    def __getattr__(self, name):
        return getattr(self.session, name)


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
