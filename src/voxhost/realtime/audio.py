"""Client PCM16 in, Whisper's 16 kHz float32 out, one append at a time.

The resampler keeps its filter state between appends, so chunk boundaries
leave no clicks or gaps (a fresh resampler per append would).
"""

from __future__ import annotations

import av
import numpy as np

from voxhost.errors import InvalidAudio

WHISPER_RATE = 16_000
SUPPORTED_RATES = (24_000, 16_000)  # OpenAI's pcm16 is 24 kHz; 16 kHz is our extension
_EMPTY = np.zeros(0, dtype=np.float32)


class PcmInput:
    def __init__(self, rate: int):
        if rate not in SUPPORTED_RATES:
            raise InvalidAudio(f"Unsupported sample rate {rate}; use 24000 or 16000.", param="rate")
        self.rate = rate
        self._resampler = (
            av.AudioResampler(format="s16", layout="mono", rate=WHISPER_RATE) if rate != WHISPER_RATE else None
        )

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
            return pcm.astype(np.float32) / 32768.0
        frame = av.AudioFrame.from_ndarray(pcm.astype(np.int16).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.rate
        out = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        if not out:
            return _EMPTY
        return np.concatenate(out).astype(np.float32) / 32768.0
