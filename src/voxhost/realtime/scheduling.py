"""How a live session reaches the decoders: the one STT scheduler, LIVE lane.

Kept apart from the turn state machine (realtime/session.py) so that the
session can be driven by a fake decoder in tests and the adapter's capacity
logic can be tested on its own.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from voxhost.engines.stt.base import SpeechToText, Transcript, TranscriptionOptions
from voxhost.engines.stt.registry import SttRegistry
from voxhost.errors import DeadlineExceeded, Overloaded
from voxhost.scheduler.stt import Lane, SttScheduler


class Decoder(Protocol):
    def engine(self, model: str | None) -> SpeechToText: ...

    async def transcribe(self, engine: SpeechToText, audio: np.ndarray,
                         options: TranscriptionOptions) -> Transcript: ...

    def busy(self, engine: SpeechToText) -> bool: ...


class SchedulerDecoder:
    """Live sessions decode through the one STT scheduler, in the LIVE lane."""

    def __init__(self, registry: SttRegistry, scheduler: SttScheduler, max_wait_seconds: float | None = None):
        self.registry = registry
        self.scheduler = scheduler
        self.max_wait_seconds = max_wait_seconds

    def engine(self, model: str | None) -> SpeechToText:
        return self.registry.get(model)

    async def transcribe(self, engine: SpeechToText, audio: np.ndarray, options: TranscriptionOptions) -> Transcript:
        """A final that waited too long for a worker is worth less than saying so: the
        executor fails it at its start deadline (batched or not), and the turn fails with
        `server_overloaded` instead of arriving late and pushing every later turn further
        behind (latency stays bounded when the server falls behind real time)."""
        try:
            return await self.scheduler.transcribe(engine, audio, options, lane=Lane.LIVE,
                                                   deadline_s=self.max_wait_seconds)
        except DeadlineExceeded:
            raise Overloaded("The server is behind real time: this turn waited too long for a decoder "
                             "and was dropped.", retry_after=1.0) from None

    def busy(self, engine: SpeechToText) -> bool:
        """Every worker of `engine`'s executor taken (a partial started now would
        wait, and make finals wait). Only that executor counts: each model has its
        own workers, so REST load on another model must not silence this
        session's partials."""
        executor = self.scheduler.executor_for(engine)
        return executor.pending >= executor.workers
