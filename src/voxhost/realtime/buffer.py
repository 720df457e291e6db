"""The session's audio: absolute sample positions, bounded by its owner."""

from __future__ import annotations

import numpy as np


class AudioBuffer:
    """Chunks of 16 kHz float32 audio addressed by absolute sample position
    (samples since the session began), so VAD events and item boundaries
    never drift as old audio is dropped."""

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        self.start = 0  # absolute position of the first kept sample
        self.end = 0  # absolute position just after the last sample

    def __len__(self) -> int:
        return self.end - self.start

    def append(self, audio: np.ndarray) -> None:
        if audio.size:
            self._chunks.append(audio)
            self.end += audio.size

    def slice(self, start: int, end: int) -> np.ndarray:
        start, end = max(start, self.start), min(end, self.end)
        if end <= start:
            return np.zeros(0, dtype=np.float32)
        data = np.concatenate(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
        self._chunks = [data]  # concatenated once, reused next time
        return data[start - self.start : end - self.start].copy()

    def drop_before(self, position: int) -> None:
        position = min(max(position, self.start), self.end)
        if position == self.start:
            return
        data = np.concatenate(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
        rest = data[position - self.start :].copy()  # a view would pin the dropped audio
        self._chunks = [rest] if rest.size else []
        self.start = position

    def clear(self) -> None:
        self._chunks = []
        self.start = self.end
