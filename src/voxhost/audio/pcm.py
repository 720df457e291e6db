"""Whisper's sample rate, PCM16 conversions and the one resampler.

Every part of voxhost that needs "16 kHz" or needs to change a sample rate
takes it from here, so the rate is written once and all resampling is PyAV's
(libswresample: filtered, not the aliasing a linear interpolation gives).
"""

from __future__ import annotations

import av
import numpy as np

WHISPER_RATE = 16_000  # what every STT engine takes: mono float32 at 16 kHz


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """float samples in [-1, 1] -> int16 (clipped)."""
    return (np.clip(audio, -1, 1) * 32767).astype(np.int16)


def from_pcm16(pcm: np.ndarray) -> np.ndarray:
    """int16 samples -> float32 in [-1, 1)."""
    return pcm.astype(np.float32) / 32768.0


class MonoResampler:
    """Anything PyAV decodes (or mono PCM16) -> mono int16 at `rate`.

    Keeps its filter state between calls, so audio fed in pieces (a network
    stream, a container's frames) resamples without seams at the boundaries.
    Call `flush()` at the end to get the filter's last samples.
    """

    def __init__(self, rate: int = WHISPER_RATE):
        self.rate = rate
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)

    def frame(self, frame: av.AudioFrame | None) -> list[np.ndarray]:
        """Resample one decoded frame (None flushes)."""
        return [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]

    def pcm16(self, pcm: np.ndarray, rate: int) -> list[np.ndarray]:
        """Resample mono int16 samples recorded at `rate`."""
        frame = av.AudioFrame.from_ndarray(pcm.astype(np.int16).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        return self.frame(frame)

    def flush(self) -> list[np.ndarray]:
        return self.frame(None)


def resample_pcm16(pcm: np.ndarray, rate: int, to_rate: int) -> np.ndarray:
    """Mono int16 at `rate` -> mono int16 at `to_rate`, in one piece."""
    if rate == to_rate:
        return pcm.astype(np.int16)
    resampler = MonoResampler(to_rate)
    return np.concatenate([*resampler.pcm16(pcm, rate), *resampler.flush()]).astype(np.int16)
