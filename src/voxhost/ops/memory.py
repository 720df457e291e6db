"""glibc's allocator set for a long-lived server: memory given back after load, and model
calls that reuse their buffers.

Two policies, because two kinds of allocation want opposite things:

- **Loading** (models, lexicons, language readers; `loading()`): buffers over 256 KiB get
  mmaps of their own. A load leaves long-lived structures (a lexicon's dict tables) among
  the temporaries it freed; in the heap those pin pages that `malloc_trim` cannot return.
  Measured by bench/hostile_probe.py before any of this: RSS rose from ~0.8 to 2.3 GB
  across a hostile probe and stayed there, as glibc's own threshold rose after each big
  free. Building the British English reader under the serving policy left 26 MiB more
  resident than under this one (+104 against +78 MiB).
- **Serving** (everything after start-up): buffers up to 32 MiB come from the heap and are
  reused. CTranslate2 has no caching CPU allocator, and a Whisper encode allocates
  activations of 2.5-50 MB per layer (whisper-base, one 25 s window); as fresh mmaps they
  are page-faulted in and unmapped again on every call. Under the loading policy, REST
  decodes ran at 0.72x the throughput with 8 clips at once and 0.81x alone, on 1.25x the
  CPU per clip (bench/stt_threads.py; docs/benchmarks.md "REST on the CPU against raw
  faster-whisper"). Audio arrays of a long file (over 32 MiB: ~9 minutes at 16 kHz) are
  still mmapped and returned on free, and an idle-time `malloc_trim` hands back what the
  heaps hold after a burst.

Both cap the arenas (bounding the per-thread heaps). mallopt is process-wide: while one
thread loads, every thread allocates under the loading policy (slower, never wrong).
On anything but glibc (musl, macOS) these are no-ops.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

log = logging.getLogger("voxhost.memory")

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

ARENA_MAX = 4  # engine, decode and event-loop threads; each extra arena holds its own heap


@dataclass(frozen=True)
class AllocatorPolicy:
    mmap_threshold: int  # bytes: larger blocks get an mmap of their own (fixed: no dynamic growth)
    trim_threshold: int  # bytes free at a heap's top before it is handed back


LOADING = AllocatorPolicy(mmap_threshold=256 * 1024, trim_threshold=1024 * 1024)
# glibc's ceiling for the mmap threshold on 64-bit. The trim threshold as high: at 1 MiB every
# encode handed its buffers back and faulted them in again (0.91x the throughput, same bench).
SERVING = AllocatorPolicy(mmap_threshold=32 * 1024 * 1024, trim_threshold=32 * 1024 * 1024)


def _libc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


_LIBC = _libc()
_lock = threading.Lock()
_loads = 0  # loading() blocks open now, in any thread
_serving = False  # start-up is over: SERVING whenever no load is open


def _apply(policy: AllocatorPolicy) -> bool:
    if _LIBC is None:
        return False
    ok = all(_LIBC.mallopt(param, value) == 1 for param, value in (
        (_M_MMAP_THRESHOLD, policy.mmap_threshold), (_M_TRIM_THRESHOLD, policy.trim_threshold)))
    if not ok:
        log.warning("mallopt refused a setting; memory may not be given back after load")
    return ok


def configure_allocator() -> bool:
    """Set glibc's allocator up for a long-lived server, loading first; True if it applied."""
    global _serving
    if _LIBC is None:
        return False
    with _lock:
        _serving = False
        arenas = _LIBC.mallopt(_M_ARENA_MAX, ARENA_MAX) == 1
        return _apply(LOADING) and arenas


def start_serving() -> None:
    """Start-up's loads are done: hand back what they left free, then the serving policy."""
    global _serving
    trim()
    with _lock:
        _serving = True
        if _loads == 0:
            _apply(SERVING)


def policy() -> AllocatorPolicy:
    """The policy in force now."""
    with _lock:
        return SERVING if _serving and _loads == 0 else LOADING


@contextmanager
def loading() -> Iterator[None]:
    """A load after start-up (a language reader built on its first line): the loading policy
    while it runs, then the serving policy again once no load is open."""
    global _loads
    with _lock:
        _loads += 1
        if _loads == 1 and _serving:
            _apply(LOADING)
    try:
        yield
    finally:
        with _lock:
            _loads -= 1
            if _loads == 0 and _serving:
                _apply(SERVING)


def trim() -> None:
    """Return free heap pages to the OS (all arenas)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


async def trim_when_idle(is_idle, interval_s: float) -> None:
    """Every `interval_s`, trim if `is_idle()`: after a burst, RSS comes back down."""
    busy_since_trim = True
    while True:
        await asyncio.sleep(interval_s)
        if is_idle():
            if busy_since_trim:
                await asyncio.to_thread(trim)
            busy_since_trim = False
        else:
            busy_since_trim = True
