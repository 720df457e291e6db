"""Server VAD: Silero (the ONNX model faster-whisper bundles) run incrementally.

Only new audio is scored: the LSTM state and the 64-sample context carry over
between calls, which gives exactly the probabilities a whole-buffer pass would
(checked in tests) at a cost proportional to the new audio alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from faster_whisper.vad import get_vad_model

WINDOW = 512  # samples at 16 kHz (32 ms): Silero's frame
_CONTEXT = 64


class StreamingSilero:
    def __init__(self):
        self._session = get_vad_model().session  # shared, thread-safe ONNX session
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(_CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    def feed(self, audio: np.ndarray) -> np.ndarray:
        """Speech probability for every window completed by `audio`."""
        samples = np.concatenate([self._pending, audio]) if self._pending.size else audio
        count = samples.size // WINDOW
        self._pending = samples[count * WINDOW :].copy()
        if count == 0:
            return np.zeros(0, dtype=np.float32)
        windows = samples[: count * WINDOW].astype(np.float32, copy=False).reshape(count, WINDOW)
        contexts = np.concatenate([self._context[None, :], windows[:-1, -_CONTEXT:]], axis=0)
        batch = np.concatenate([contexts, windows], axis=1)
        probs, self._h, self._c = self._session.run(None, {"input": batch, "h": self._h, "c": self._c})
        self._context = windows[-1, -_CONTEXT:].copy()
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
