"""Server VAD: Silero (the ONNX model faster-whisper bundles) run incrementally,
and the turn detector that reads its probabilities.

Only new audio is scored: the LSTM state and the 64-sample context carry over
between calls, which gives exactly the probabilities a whole-buffer pass would
(checked in tests) at a cost proportional to the new audio alone. Live sessions
score through realtime/vad_batch.py (all sessions in one call per tick);
`StreamingSilero` scores one stream alone with the graph as shipped, the
reference the batched VAD is checked against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from faster_whisper.vad import get_vad_model

from voxhost.realtime.silero_batch import WINDOW
from voxhost.realtime.vad_batch import SileroStream

__all__ = ["WINDOW", "StreamingSilero", "TurnDetection", "TurnDetector"]


class StreamingSilero:
    """One stream, scored synchronously by faster-whisper's own graph."""

    def __init__(self):
        self._session = get_vad_model().session  # shared, thread-safe ONNX session
        self._stream = SileroStream()

    def reset(self) -> None:
        self._stream.reset()

    def forget(self) -> None:
        self._stream.forget()

    def feed(self, audio: np.ndarray) -> np.ndarray:
        """Speech probability for every window completed by `audio`."""
        rows = self._stream.rows(audio)
        if rows.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        stream = self._stream
        probs, h, c = self._session.run(None, {"input": rows, "h": stream.h[None, None], "c": stream.c[None, None]})
        stream.h, stream.c = h[0, 0], c[0, 0]
        return np.asarray(probs, dtype=np.float32).reshape(-1)


@dataclass(frozen=True)
class TurnDetection:
    """OpenAI's server_vad parameters (same defaults)."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    type: str = "server_vad"
    eagerness: str | None = None  # semantic_vad only, approximated by silence_duration_ms


class TurnDetector:
    """Window probabilities -> speech start / stop, with Silero's hysteresis:
    speech starts at `threshold`, and only probabilities under
    `threshold - 0.15` count as silence."""

    def __init__(self, config: TurnDetection):
        self.config = config
        self.silence_samples = int(config.silence_duration_ms * 16)
        self.neg_threshold = max(config.threshold - 0.15, 0.01)
        self.active = False
        self._silence_since: int | None = None

    def reset(self) -> None:
        self.active = False
        self._silence_since = None

    @property
    def silence_since(self) -> int | None:
        """Where the pause that may end the current turn began (None: speaking or idle)."""
        return self._silence_since if self.active else None

    def push(self, prob: float, end: int) -> tuple[Literal["start", "stop"], int] | None:
        """`end`: absolute sample just after this window. Returns the event and
        its sample position (speech start, or the point speech was declared over)."""
        start = end - WINDOW
        if not self.active:
            if prob >= self.config.threshold:
                self.active = True
                self._silence_since = None
                return "start", start
            return None
        if prob >= self.config.threshold:
            self._silence_since = None
        elif prob < self.neg_threshold and self._silence_since is None:
            self._silence_since = start
        if self._silence_since is not None and end - self._silence_since >= self.silence_samples:
            self.reset()
            return "stop", end
        return None
