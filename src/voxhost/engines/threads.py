"""Every native thread pool the server runs, sized here on purpose, per engine and per device.

A speech server's CPU work is many small native calls (a mel filterbank product, a Silero
window, a decoder step). A library left to its defaults gives each a pool as wide as the
machine, and an idle pool's threads spin-wait for the next call: unpinned, live players cost
several times the CPU they cost on one pinned core, nearly all of it one idle OpenBLAS
thread (docs/benchmarks.md "Thread pools: where the idle CPU went"). So no pool is
left to chance:

| pool | library | size | idle threads |
|---|---|---|---|
| BLAS (numpy's and scipy's OpenBLAS: mel filterbank, resampling, voice shaping) | OpenBLAS | 1 thread | none: a one-thread OpenBLAS has no workers to spin |
| Whisper on a CPU | CTranslate2 (`inter_threads`, `intra_threads`), GNU OpenMP | `whisper_threads`: two decodes at once, each may use every core | OpenMP waits passively (`OMP_WAIT_POLICY`) |
| Whisper on a GPU | CTranslate2 | one worker (the batcher gives the concurrency), CTranslate2's own CPU thread count | - |
| Silero VAD (live sessions' batched session; faster-whisper's own gate) | onnxruntime | 1 intra-op, 1 inter-op thread: no pool | no spinning |
| Kokoro, piper (CPU) | onnxruntime | `tts_threads`: one pool as wide as the cores, shared by the concurrent syntheses | spinning off (`VOXHOST_TTS_SPIN_US` spins within a run only) |
| hibari | onnxruntime | 1 thread: no pool (a small model; a pool's hand-offs cost more than they give) | - |
| TTS on a GPU (CUDA provider) | onnxruntime | as on the CPU: only nodes without a CUDA kernel use these threads | spinning off |

"A lone request gets every core; concurrent ones share them": a push-to-talk clip alone on a
server must decode as fast as plain faster-whisper on the whole machine, and eight at once
must not pay for threads fighting over the cores (measured side by side: bench/stt_threads.py,
bench/serving_throughput.py --raw; docs/benchmarks.md).

Two kinds of knob. Environment variables are read once, when each library loads, so
`configure_environment` must run before numpy or CTranslate2 is imported: `voxhost serve`
calls it first thing, and an operator's own value always wins. Everything else is set at run
time, when the pool is created (`whisper_threads`, `OnnxThreads`), or through threadpoolctl
(`limit_blas`), which also holds when the server is built inside a process that loaded numpy
first (tests, benchmarks).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("voxhost.threads")

BLAS_THREADS = 1

# Read by the libraries when they load; the operator's own values win (setdefault).
ENVIRONMENT = {
    # numpy's and scipy's OpenBLAS start no worker threads at all (limit_blas does the same at
    # run time, but the threads made at import would still exist, asleep).
    "OPENBLAS_NUM_THREADS": str(BLAS_THREADS),
    # CTranslate2's GNU OpenMP: a thread waiting at a barrier sleeps instead of spinning, so two
    # decodes of two threads each on two cores share them instead of burning each other's time.
    "OMP_WAIT_POLICY": "PASSIVE",
}


def configure_environment(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set ENVIRONMENT's variables that are not set yet; returns those it set.
    Useful only before numpy and CTranslate2 load (worker processes inherit it)."""
    environ = os.environ if environ is None else environ
    added = {name: value for name, value in ENVIRONMENT.items() if name not in environ}
    environ.update(added)
    return added


def limit_blas() -> None:
    """numpy's and scipy's OpenBLAS at BLAS_THREADS, whatever their environment said.
    The server's BLAS calls are small (an 80 x 201 filterbank against a few frames), and a
    second OpenBLAS thread spin-waits after each of them for far longer than it helped."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=BLAS_THREADS, user_api="blas")


def blas_threads() -> list[int]:
    """Threads of each BLAS library loaded in this process (read back from the libraries)."""
    from threadpoolctl import threadpool_info

    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup CPU quota
    (a container given 2 CPUs on a 16-core host must size its pools for 2)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    if quota:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs granted by a cgroup CPU limit (v2 `cpu.max`, v1 `cpu.cfs_quota_us`); None: no limit."""
    try:
        limit, interval = (root / "cpu.max").read_text().split()[:2]
        return None if limit == "max" else int(limit) / int(interval)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


# --- Whisper (CTranslate2) -------------------------------------------------------------------

@dataclass(frozen=True)
class WhisperThreads:
    workers: int  # CTranslate2 inter_threads: decodes at once (the server's executor matches it)
    threads: int  # CTranslate2 intra_threads: OpenMP threads per decode; 0: CTranslate2's default


CPU_WORKERS = 2  # decodes at once on a CPU (fewer on a one-core host)


def whisper_threads(device: str, cpu_threads: int = 0, num_workers: int = 0,
                    cores: int | None = None) -> WhisperThreads:
    """Workers and threads per worker for a Whisper engine; 0 in either = auto.

    CPU: two workers, and each may use every core. A lone request (push-to-talk) then decodes
    on all the cores, as fast as plain faster-whisper; two at once each get half, and the
    passive OpenMP wait (ENVIRONMENT) keeps the four threads from spinning against each other.
    GPU: one worker, since the batcher gives the concurrency and each CTranslate2 replica holds
    its own buffers in GPU memory; the CPU threads are CTranslate2's own default (the decode
    runs on the GPU)."""
    cores = cores or usable_cores()
    if device == "cuda":
        return WhisperThreads(workers=num_workers or 1, threads=cpu_threads)
    return WhisperThreads(workers=num_workers or min(CPU_WORKERS, cores), threads=cpu_threads or cores)


# --- onnxruntime -----------------------------------------------------------------------------

@dataclass(frozen=True)
class OnnxThreads:
    intra: int  # intra-op threads, the caller included (1: no pool)
    inter: int = 1  # inter-op threads: used only by the parallel execution mode, which no engine uses
    # Microseconds a pool thread spin-waits for the next parallel section within a run before it
    # sleeps; 0: it sleeps at once. Spinning always stops when the run ends
    # (session.force_spinning_stop), so an idle pool burns nothing between runs.
    spin_us: int = 0

    def apply(self, options):
        """Size an onnxruntime.SessionOptions' pools; returns it."""
        options.intra_op_num_threads = self.intra
        options.inter_op_num_threads = self.inter
        flag = "1" if self.spin_us > 0 else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", flag)
        options.add_session_config_entry("session.inter_op.allow_spinning", flag)
        if self.spin_us > 0:
            options.add_session_config_entry("session.intra_op.spin_duration_us", str(self.spin_us))
            options.add_session_config_entry("session.force_spinning_stop", "1")
        return options


# Silero scores one 32 ms window per stream in tens of microseconds: no pool pays for itself.
VAD = OnnxThreads(intra=1)

# TTS engines whose onnxruntime session is theirs to size, and how wide by default.
SINGLE_THREADED_TTS = frozenset({"hibari"})


def tts_threads(engine: str, device: str = "cpu", threads: int = 0, cores: int | None = None,
                spin_us: int = 0) -> OnnxThreads:
    """The pools of a TTS engine's session; `threads` 0 = auto (VOXHOST_TTS_THREADS).

    Auto: as wide as the cores, so a lone line synthesises on all of them; the syntheses the
    TTS scheduler runs at once (VOXHOST_TTS_CONCURRENCY) share that one pool with their own
    calling threads. By default no spinning: between a synthesis's parallel sections and after
    it, idle threads sleep rather than take the cores from live players' VAD. `spin_us`
    (VOXHOST_TTS_SPIN_US) lets them spin within a run only; they stop when it ends. hibari is small enough that one thread is
    its fastest (no pool, nothing to spin). On a GPU the same threads serve the nodes the CUDA
    provider leaves to the CPU."""
    if threads <= 0:
        threads = 1 if engine in SINGLE_THREADED_TTS else (cores or usable_cores())
    return OnnxThreads(intra=threads, spin_us=spin_us if threads > 1 else 0)


def describe(settings=None) -> dict:
    """The plan as the server applies it, for logs and `GET /health`-style diagnostics."""
    cores = usable_cores()
    return {"usable_cores": cores, "blas_threads": blas_threads(),
            "environment": {name: os.environ.get(name) for name in ENVIRONMENT}}
