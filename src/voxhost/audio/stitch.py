"""Joining synthesised chunks without clicks.

Each chunk starts and ends with a short raised-cosine fade and chunks are
separated by silence, so every join passes through zero: no step in the
waveform, no click, whatever the engine left at its edges.
"""

from __future__ import annotations

import numpy as np

FADE_SECONDS = 0.004


def _ramp(n: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(np.pi * (np.arange(n, dtype=np.float32) + 0.5) / n)).astype(np.float32)


def shape(pcm: np.ndarray, sample_rate: int, fade: float = FADE_SECONDS, *,
          fade_in: bool = True, fade_out: bool = True) -> np.ndarray:
    """Copy of `pcm` with a fade in and a fade out of `fade` seconds (either can be left
    off, for a chunk handed over in pieces: its first piece fades in, its last out)."""
    out = np.asarray(pcm, np.float32).copy()
    n = min(int(fade * sample_rate), out.size // 2)
    if n > 0:
        ramp = _ramp(n)
        if fade_in:
            out[:n] *= ramp
        if fade_out:
            out[-n:] *= ramp[::-1]
    return out


def silence(seconds: float, sample_rate: int) -> np.ndarray:
    return np.zeros(int(round(seconds * sample_rate)), np.float32)
