"""Short encoder windows for faster-whisper, which has no parameter for them.

Whisper's encoder is trained on 30 s windows, and faster-whisper pads every
window to 3000 frames, so a 2 s turn costs as much as 30 s. CTranslate2
accepts shorter inputs (4x faster for a 5 s window, same text on our eval
set: docs/benchmarks.md). The only way in is faster-whisper's module-level
`pad_or_trim`, so this module wraps it:

- pinned: only on the faster-whisper versions it was checked against
  (`TESTED`); on any other version the wrapper is not installed, a warning
  says so once, and callers fall back to the full 30 s window (correct
  transcripts, the old cost) instead of trusting an internal that may have
  changed;
- scoped: the wrapper is installed on first use, and changes nothing unless
  the calling thread is inside `encoder_window(...)`; other threads and
  other calls keep faster-whisper's 3000 frames.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version

import faster_whisper.transcribe as _fw_transcribe
from packaging.specifiers import SpecifierSet

log = logging.getLogger("voxhost.stt")

# Versions whose transcribe.pad_or_trim(array, length=3000, axis=-1) this was checked
# against (keep in step with pyproject.toml's faster-whisper pin).
TESTED_RANGE = ">=1.1,<1.3"
TESTED = SpecifierSet(TESTED_RANGE)
FULL_FRAMES = 3000

_local = threading.local()
_lock = threading.Lock()
_state: dict[str, bool] = {}


def _windowed(original):
    def pad_or_trim(array, length: int = FULL_FRAMES, *, axis: int = -1):
        frames = getattr(_local, "frames", None)
        return original(array, frames if frames and length == FULL_FRAMES else length, axis=axis)

    pad_or_trim.voxhost_original = original  # type: ignore[attr-defined]  # marks the wrapper as ours
    return pad_or_trim


def tested(found: str) -> bool:
    """Whether faster-whisper `found` is a version the wrapper was checked against."""
    return found in TESTED


def available() -> bool:
    """Whether short windows can be used (installing the wrapper on first call)."""
    with _lock:
        if "ok" not in _state:
            found = version("faster-whisper")
            ok = tested(found) and hasattr(_fw_transcribe, "pad_or_trim")
            if ok:
                if not hasattr(_fw_transcribe.pad_or_trim, "voxhost_original"):
                    _fw_transcribe.pad_or_trim = _windowed(_fw_transcribe.pad_or_trim)
            else:
                log.warning("faster-whisper %s is outside the versions short encoder windows were "
                            "tested with (%s): decoding every window at the full 30 s (slower, same "
                            "text). Install 'faster-whisper%s' to get them back.", found, TESTED_RANGE,
                            TESTED_RANGE)
            _state["ok"] = ok
        return _state["ok"]


@contextmanager
def encoder_window(frames: int) -> Iterator[None]:
    """Within this block, this thread's faster-whisper encodes `frames` mel frames
    per window instead of 3000 (call only when `available()`)."""
    _local.frames = frames
    try:
        yield
    finally:
        _local.frames = None
