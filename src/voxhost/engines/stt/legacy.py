"""STT plugins written before the contract was an ABC: they implemented its methods
without subclassing `SpeechToText`, and their optional parts were read with getattr.

The registry wraps such an engine once, at load, with a DeprecationWarning; every
member the contract names is delegated explicitly (nothing is forwarded blindly), and
the optional ones are read here, once, with the contract's defaults.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterator
from typing import Any

import numpy as np

from voxhost.engines.stt.base import (
    Segment,
    SpeechToText,
    Transcript,
    TranscriptionInfo,
    TranscriptionOptions,
)


class StructuralEngine(SpeechToText):
    def __init__(self, engine: Any):
        self.inner = engine
        self.name = engine.name
        for attribute in ("description", "multilingual", "device", "compute_type", "num_workers", "n_mels"):
            setattr(self, attribute, getattr(engine, attribute, getattr(SpeechToText, attribute)))
        gate = getattr(engine, "gate_options", None)  # the older contract's spelling
        self.gate_threshold = getattr(engine, "gate_threshold", getattr(gate, "threshold", None))

    def warm_up(self) -> None:
        if hasattr(self.inner, "warm_up"):
            self.inner.warm_up()

    def transcribe_stream(
        self, audio: np.ndarray, options: TranscriptionOptions
    ) -> tuple[TranscriptionInfo, Iterator[Segment]]:
        return self.inner.transcribe_stream(audio, options)

    def transcribe(self, audio: np.ndarray, options: TranscriptionOptions,
                   stop: threading.Event | None = None) -> Transcript:
        if hasattr(self.inner, "transcribe"):
            return self.inner.transcribe(audio, options, stop)
        return super().transcribe(audio, options, stop)

    def batch_key(self, audio: np.ndarray, options: TranscriptionOptions) -> Hashable | None:
        if hasattr(self.inner, "batch_key") and hasattr(self.inner, "transcribe_batch"):
            return self.inner.batch_key(audio, options)
        return None

    def transcribe_batch(
        self, audios: list[np.ndarray], options: list[TranscriptionOptions] | TranscriptionOptions
    ) -> list[Transcript | Exception]:
        return self.inner.transcribe_batch(audios, options)
