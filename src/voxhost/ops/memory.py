"""Give memory back to the OS after load (glibc's allocator keeps it otherwise).

Measured by bench/hostile_probe.py: RSS rose from ~0.8 to 2.3 GB across a
hostile probe and stayed there. glibc raises its mmap threshold after each
large block is freed (a long decode's sample arrays), so later mid-sized
buffers come from per-thread heap arenas, which fragment and are rarely
returned. Fixing the threshold keeps large buffers in mmap (returned on
free), capping arenas bounds the per-thread heaps, and an idle-time
`malloc_trim` hands back what the heaps still hold.

On anything but glibc (musl, macOS) these are no-ops.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging

log = logging.getLogger("voxhost.memory")

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

MMAP_THRESHOLD_BYTES = 256 * 1024  # fixed: no dynamic growth after big frees
TRIM_THRESHOLD_BYTES = 1024 * 1024
ARENA_MAX = 4  # engine, decode and event-loop threads; each extra arena holds its own heap


def _libc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


_LIBC = _libc()


def configure_allocator() -> bool:
    """Set glibc's allocator up for a long-lived server; True if it applied."""
    if _LIBC is None:
        return False
    ok = all(_LIBC.mallopt(param, value) == 1 for param, value in (
        (_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
        (_M_ARENA_MAX, ARENA_MAX)))
    if not ok:
        log.warning("mallopt refused a setting; memory may not be given back after load")
    return ok


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
