"""Client PCM16 in, Whisper's 16 kHz float32 out, one append at a time.

The resampler keeps its filter state between appends, so chunk boundaries
leave no clicks or gaps (a fresh resampler per append would).
"""

from __future__ import annotations

import numpy as np

from voxhost.audio.pcm import WHISPER_RATE, MonoResampler, from_pcm16
from voxhost.errors import InvalidAudio

__all__ = ["WHISPER_RATE", "SUPPORTED_RATES", "PcmInput"]
SUPPORTED_RATES = (24_000, WHISPER_RATE)  # OpenAI's pcm16 is 24 kHz; 16 kHz is our extension
_EMPTY = np.zeros(0, dtype=np.float32)


class PcmInput:
    def __init__(self, rate: int):
        if rate not in SUPPORTED_RATES:
            raise InvalidAudio(f"Unsupported sample rate {rate}; use 24000 or 16000.", param="rate")
        self.rate = rate
        self._resampler = MonoResampler(WHISPER_RATE) if rate != WHISPER_RATE else None

    def convert(self, data: bytes) -> np.ndarray:
        """Little-endian mono PCM16 bytes at `rate` -> float32 samples at 16 kHz."""
        if len(data) % 2:
            raise InvalidAudio(
                f"PCM16 audio must be whole 16-bit samples; got an odd number of bytes ({len(data)}).",
                param="audio",
            )
        if not data:
            return _EMPTY
        pcm = np.frombuffer(data, dtype="<i2")
        if self._resampler is None:
            return from_pcm16(pcm)
        out = self._resampler.pcm16(pcm, self.rate)
        if not out:
            return _EMPTY
        return from_pcm16(np.concatenate(out))
